-- The event's own cancellation policy as the catalog last published it with the performance
-- (contracts::policy::CancellationPolicy as JSON); NULL: the platform default
-- (`order.cancellation`). Orders created afterwards freeze it; existing orders keep theirs.
ALTER TABLE performances ADD COLUMN cancellation_policy jsonb;
