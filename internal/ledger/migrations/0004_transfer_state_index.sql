-- One index serves both questions asked by state: "in these states" (the
-- reconciler, the quarantine list) and "in this state on this node" (a
-- restart's uploads cut off). Every upload and state change writes one
-- index fewer.
DROP INDEX transfers_node_state;
DROP INDEX transfers_state;
CREATE INDEX transfers_state_node ON transfers (state, node);
