-- Every replica's request records, exactly once per request id, partitioned
-- by month (a month is dropped or archived as one table), indexed for the
-- console's queries (a tenant's calls by time, by user, by task) and for
-- replicas following the log (seq).
CREATE SEQUENCE request_log_seq;

CREATE TABLE request_log (
    seq        bigint      NOT NULL,
    id         text        NOT NULL,
    at         timestamptz NOT NULL,
    tenant_id  text        NOT NULL,
    user_id    text        NOT NULL,
    task_id    text        NOT NULL,
    status     integer     NOT NULL,
    tokens_in  bigint      NOT NULL,
    tokens_out bigint      NOT NULL,
    replica    text        NOT NULL,
    record     jsonb       NOT NULL,
    PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);

CREATE INDEX request_log_by_tenant ON request_log (tenant_id, at);
CREATE INDEX request_log_by_user ON request_log (tenant_id, user_id, at);
CREATE INDEX request_log_by_task ON request_log (tenant_id, task_id, at);
CREATE INDEX request_log_by_seq ON request_log (seq);

-- Records outside every month's partition (none, unless a clock is wrong).
CREATE TABLE request_log_default PARTITION OF request_log DEFAULT;

-- The month's partition of an instant, made on first use.
CREATE FUNCTION warden_log_partition(at timestamptz) RETURNS void AS $$
DECLARE
    month_start timestamptz := date_trunc('month', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    name text := 'request_log_' || to_char(month_start AT TIME ZONE 'UTC', 'YYYY_MM');
BEGIN
    IF to_regclass(name) IS NULL THEN
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF request_log FOR VALUES FROM (%L) TO (%L)',
            name, month_start, month_start + interval '1 month');
    END IF;
END;
$$ LANGUAGE plpgsql;

ALTER TABLE request_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_log ON request_log
    USING (tenant_id = current_setting('warden.tenant', true));
