-- bench/peers/create_case.sql — pgbench script of row 10's PostgreSQL peer: one CreateCase
-- per transaction (bench/peers/schema.sql's create_case: case row with the unique order
-- line, history row, outbox row with the announcement's sequence number, deadline
-- column), in one round trip, autocommit. Run with
--   pgbench -n -c 50 -j 2 -T SECS -M prepared -D run=R -D n=0 -f create_case.sql
-- Each client counts its own calls (:n), so each call is a new order line
-- ("<run>-<client>-<n>"), as in the daemon's load: every call creates a case.
-- The request is the daemon bench's plain case (Cases.plain: a signed, full refund-only
-- request without signals → AWAITING_MERCHANT_REVIEW, 48 h deadline).
\set n :n + 1
\set order_no :run * 100000000000 + :client_id * 1000000000 + :n
SELECT case_id, status, score, seq FROM create_case(:order_no, '1', 'C-bench', 'M-bench', 'apparel', 'REFUND_ONLY', 'SIGNED',
  12900, 12900, 'the zip broke on first use', '{}', '{}', 0, 0, 0);
