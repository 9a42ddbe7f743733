-- The payment service's database. Tables arrive with the service's issue.
SELECT 1;
