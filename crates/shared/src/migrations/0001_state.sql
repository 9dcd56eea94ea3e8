-- The shared state every replica reads its snapshot from: one row per key
-- of each shared sled tree (documents as the replicas store them), keyed by
-- tenant where the tree is, and the ordered log of every committed change
-- that replicas tail to stay current.
CREATE TABLE state_rows (
    tree      text   NOT NULL,
    key       bytea  NOT NULL,
    tenant_id text,
    value     bytea  NOT NULL,
    PRIMARY KEY (tree, key)
);
CREATE INDEX state_rows_by_tenant ON state_rows (tenant_id, tree);

-- Changes in commit order: writers take one advisory lock per
-- transaction, so a later seq never commits before an earlier one and a
-- replica tailing "seq > last seen" misses nothing.
CREATE TABLE state_changes (
    seq        bigserial   PRIMARY KEY,
    tree       text        NOT NULL,
    key        bytea       NOT NULL,
    tenant_id  text,
    value      bytea,
    replica    text        NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX state_changes_by_tenant ON state_changes (tenant_id, seq);

-- Row-level security, a second line of defence: a session that sets
-- warden.tenant sees only that tenant's rows (and the rows of no tenant:
-- signing keys, sessions). The replicas' snapshot loader and writer run as
-- the owner, who bypasses it; a tenant-scoped reader does not.
ALTER TABLE state_rows ENABLE ROW LEVEL SECURITY;
ALTER TABLE state_changes ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON state_rows
    USING (tenant_id IS NULL OR tenant_id = current_setting('warden.tenant', true));
CREATE POLICY tenant_changes ON state_changes
    USING (tenant_id IS NULL OR tenant_id = current_setting('warden.tenant', true));
