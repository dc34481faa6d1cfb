-- The console lists a route's transfers newest first. Partial, so that an
-- upload (no route) writes no entry; the route never changes after the
-- insert, so a state change writes none either. (Numbered after the issue
-- that added it, 24, so as not to take a number a concurrent change takes.)
CREATE INDEX transfers_route_created ON transfers (route, created_at) WHERE route <> '';
