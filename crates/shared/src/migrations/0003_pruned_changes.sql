-- How far the change log has been pruned (see postgres.rs, PRUNE_AFTER): a
-- replica that has not applied up to here missed changes and must start
-- again from a snapshot.
CREATE TABLE state_changes_pruned (
    id   boolean PRIMARY KEY DEFAULT true CHECK (id),
    upto bigint  NOT NULL
);
INSERT INTO state_changes_pruned (upto) VALUES (0);
