-- bench/peers/schema.sql — the PostgreSQL peer of row 10 (`make bench`, section `peers`):
-- aftersalesd's CreateCase as ONE PostgreSQL transaction, as a team would build it on a
-- database instead of writing a daemon. This file makes the tables and the function;
-- bench/peers/create_case.sql is the pgbench script that calls it (one round trip, one
-- transaction, synchronous_commit = on: a reply means the WAL is on disk, like
-- aftersalesd --fsync always). What each part mirrors in the daemon:
--
--   cases      the store's record (Case); UNIQUE (order_id, order_line_id) is the
--              store's order-line index (one case per order line → ALREADY_EXISTS);
--              deadline_at, indexed, is the deadline queue keyed by time
--   history    the case's append-only log of steps (history)
--   outbox     the announcements: seq (a sequence) is the announcement sequence number,
--              a relay would publish the rows in seq order (the transactional outbox
--              pattern; PostgreSQL cannot publish and commit atomically otherwise)
--   create_case(...)  CaseMachine.create: validation, the order-line check, the
--              eligibility gates and the weighted score of InterventionPolicy (PolicyWeights'
--              defaults), the proposal when it intervenes, the history row(s), the outbox
--              row(s); returns the case id, status, score and last sequence number.
DROP TABLE IF EXISTS outbox, history, cases CASCADE;
DROP SEQUENCE IF EXISTS announce_seq;

CREATE TABLE cases (
  case_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  order_id text NOT NULL,
  order_line_id text NOT NULL,
  consumer_id text NOT NULL,
  merchant_id text NOT NULL,
  category text NOT NULL,
  reason text NOT NULL,
  type text NOT NULL,
  delivery text NOT NULL,
  paid_amount bigint NOT NULL,
  refund_amount bigint NOT NULL,
  return_shipping_payer text NOT NULL DEFAULT 'CONSUMER',
  signals_logistics text[] NOT NULL,
  signals_evidence text[] NOT NULL,
  merchant_violations_90d int NOT NULL,
  merchant_complaint_rate_bp int NOT NULL,
  consumer_refund_only_30d int NOT NULL,
  status text NOT NULL,
  judgement_score int NOT NULL,
  judgement_reasons text[] NOT NULL,
  proposal_state text,
  proposal_issued_at timestamptz,
  proposal_expires_at timestamptz,
  proposal_issue_kind text,
  review_remaining_ms bigint,
  deadline_kind text NOT NULL,
  deadline_at timestamptz NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  version int NOT NULL DEFAULT 0,
  UNIQUE (order_id, order_line_id)
);
CREATE INDEX cases_deadline_at ON cases (deadline_at);

CREATE TABLE history (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  case_id bigint NOT NULL,
  at timestamptz NOT NULL,
  actor text NOT NULL,
  action text NOT NULL,
  from_status text,
  to_status text NOT NULL,
  note text NOT NULL
);
CREATE INDEX history_case_id ON history (case_id);

CREATE SEQUENCE announce_seq;
CREATE TABLE outbox (
  seq bigint PRIMARY KEY,
  topic text NOT NULL,
  case_id bigint NOT NULL,
  payload text NOT NULL,
  created_at timestamptz NOT NULL
);

CREATE OR REPLACE FUNCTION create_case(
  p_order_id text, p_line text, p_consumer text, p_merchant text, p_category text,
  p_type text, p_delivery text, p_paid bigint, p_refund bigint, p_reason text,
  p_anomalies text[], p_evidence text[],  -- evidence items 'KIND:TAG'
  p_violations int, p_complaint_bp int, p_refund_only_30d int,
  OUT case_id bigint, OUT status text, OUT score int, OUT seq bigint)
LANGUAGE plpgsql AS $$
DECLARE
  v_now timestamptz := clock_timestamp();
  gates text[] := '{}';
  reasons text[] := '{}';
  logistics int := 0;
  quality int := 0;
  penalty int := 0;
  points int;
  item text;
  tag text;
  best jsonb := '{}';
  issue_kind text;
  intervene boolean;
  v_deadline_kind text := 'MERCHANT_REVIEW';
  v_due timestamptz := v_now + interval '48 hours';
BEGIN
  -- CaseMachine.validate
  IF p_order_id = '' OR p_consumer = '' OR p_merchant = '' OR p_category = '' THEN
    RAISE EXCEPTION 'INVALID_ARGUMENT: order_id, consumer_id, merchant_id and category are required';
  END IF;
  IF p_paid <= 0 OR p_refund <= 0 OR p_refund > p_paid OR p_complaint_bp > 10000 THEN
    RAISE EXCEPTION 'INVALID_ARGUMENT: money or complaint rate out of range';
  END IF;
  -- InterventionPolicy.failedGates
  IF p_type <> 'REFUND_ONLY' THEN gates := gates || 'NOT_REFUND_ONLY'::text; END IF;
  IF p_refund <> p_paid THEN gates := gates || 'PARTIAL_REFUND'::text; END IF;
  IF p_delivery <> 'SIGNED' THEN gates := gates || 'NOT_SIGNED'::text; END IF;
  IF p_category IN ('fresh_produce', 'flowers_horticulture', 'live_pets') THEN gates := gates || 'EXCLUDED_CATEGORY'::text; END IF;
  -- InterventionPolicy.score (PolicyWeights' defaults)
  FOREACH item IN ARRAY p_anomalies LOOP
    points := CASE item WHEN 'LOST_IN_TRANSIT' THEN 100 WHEN 'DAMAGED_IN_TRANSIT' THEN 80 WHEN 'WRONG_ITEM' THEN 80
                        WHEN 'PARTIAL_DELIVERY' THEN 60 WHEN 'LATE_DELIVERY' THEN 20 ELSE 0 END;
    IF points > 0 THEN logistics := logistics + points; reasons := reasons || ('LOGISTICS_' || item); END IF;
  END LOOP;
  -- each tag once, at its strongest medium; text earns 40 %
  FOREACH item IN ARRAY p_evidence LOOP
    tag := split_part(item, ':', 2);
    points := CASE tag WHEN 'DEFECT' THEN 60 WHEN 'DAMAGE' THEN 60 WHEN 'WRONG_ITEM' THEN 60
                       WHEN 'MISSING_PART' THEN 50 WHEN 'NOT_AS_DESCRIBED' THEN 45 ELSE 0 END;
    IF split_part(item, ':', 1) = 'TEXT' THEN points := points * 40 / 100; END IF;
    IF points > coalesce((best ->> tag)::int, 0) THEN best := best || jsonb_build_object(tag, points); END IF;
  END LOOP;
  FOR tag, points IN SELECT key, value::int FROM jsonb_each_text(best) LOOP
    quality := quality + points; reasons := reasons || ('EVIDENCE_' || tag);
  END LOOP;
  IF quality > 0 THEN
    IF p_violations > 0 THEN quality := quality + least(p_violations * 10, 30); reasons := reasons || 'MERCHANT_VIOLATIONS_90D'::text; END IF;
    IF p_complaint_bp >= 300 THEN quality := quality + 20; reasons := reasons || 'MERCHANT_COMPLAINT_RATE_HIGH'::text; END IF;
  END IF;
  IF p_refund_only_30d > 3 THEN
    penalty := least((p_refund_only_30d - 3) * 15, 60); reasons := reasons || 'CONSUMER_REFUND_ONLY_FREQUENT'::text;
  END IF;
  issue_kind := CASE WHEN logistics >= quality THEN 'LOGISTICS' ELSE 'QUALITY' END;
  score := greatest(logistics, quality) - penalty;
  intervene := cardinality(gates) = 0 AND score >= 60;
  IF cardinality(gates) > 0 THEN reasons := gates; ELSIF NOT intervene THEN reasons := reasons || 'NO_ISSUE_DETECTED'::text; END IF;
  status := 'AWAITING_MERCHANT_REVIEW';
  IF intervene THEN status := 'PROPOSAL_PENDING'; v_deadline_kind := 'PROPOSAL_EXPIRY'; v_due := v_now + interval '12 hours'; END IF;

  -- the case row; the unique order line is the store's order-line check
  INSERT INTO cases AS c (order_id, order_line_id, consumer_id, merchant_id, category, reason, type, delivery,
      paid_amount, refund_amount, signals_logistics, signals_evidence, merchant_violations_90d,
      merchant_complaint_rate_bp, consumer_refund_only_30d, status, judgement_score, judgement_reasons,
      proposal_state, proposal_issued_at, proposal_expires_at, proposal_issue_kind, review_remaining_ms,
      deadline_kind, deadline_at, created_at, updated_at)
    VALUES (p_order_id, p_line, p_consumer, p_merchant, p_category, p_reason, p_type, p_delivery,
      p_paid, p_refund, p_anomalies, p_evidence, p_violations, p_complaint_bp, p_refund_only_30d,
      status, score, reasons,
      CASE WHEN intervene THEN 'PENDING' END, CASE WHEN intervene THEN v_now END,
      CASE WHEN intervene THEN v_due END, CASE WHEN intervene THEN issue_kind END,
      CASE WHEN intervene THEN 48 * 3600 * 1000 END,
      v_deadline_kind, v_due, v_now, v_now)
    ON CONFLICT (order_id, order_line_id) DO NOTHING
    RETURNING c.case_id INTO case_id;
  IF case_id IS NULL THEN
    status := 'ALREADY_EXISTS';
    RETURN;
  END IF;
  -- history
  INSERT INTO history (case_id, at, actor, action, from_status, to_status, note)
    VALUES (case_id, v_now, 'CONSUMER', 'CREATE', NULL, 'AWAITING_MERCHANT_REVIEW', p_reason);
  -- the announcement(s), in the outbox
  seq := nextval('announce_seq');
  INSERT INTO outbox (seq, topic, case_id, payload, created_at)
    VALUES (seq, 'case.created', case_id,
            seq || '|case.created|' || case_id || '|' || p_order_id || '|' || p_merchant || '|' || status || '|' || v_due, v_now);
  IF intervene THEN
    INSERT INTO history (case_id, at, actor, action, from_status, to_status, note)
      VALUES (case_id, v_now, 'PLATFORM', 'ISSUE_PROPOSAL', 'AWAITING_MERCHANT_REVIEW', 'PROPOSAL_PENDING', array_to_string(reasons, ','));
    seq := nextval('announce_seq');
    INSERT INTO outbox (seq, topic, case_id, payload, created_at)
      VALUES (seq, 'proposal.issued', case_id,
              seq || '|proposal.issued|' || case_id || '|' || p_order_id || '|' || p_merchant || '|' || status || '|' || v_due, v_now);
  END IF;
END $$;
