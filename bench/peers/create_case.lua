-- bench/peers/create_case.lua — the Redis peer of row 10 (`make bench`, section `peers`):
-- aftersalesd's CreateCase done by a Lua script inside Redis 7, one EVALSHA per case,
-- as a team would build it on Redis instead of writing a daemon. Loaded with SCRIPT LOAD,
-- called by `redis-benchmark -c 50 -r … EVALSHA <sha> 1 ol:O-__rand_int__:1 <fields…>`.
-- Each step names what it mirrors in the daemon:
--
--   KEYS[1]   "ol:<order_id>:<order_line_id>": the order-line index (CaseStore: one open
--             case per order line → ALREADY_EXISTS)
--   ARGV      consumer_id merchant_id category type delivery paid_amount refund_amount
--             reason logistics_anomalies evidence merchant_violations_90d
--             merchant_complaint_rate_bp consumer_refund_only_30d
--             (anomalies: comma-separated names; evidence: comma-separated KIND:TAG items,
--             e.g. "PHOTO:DEFECT,TEXT:DAMAGE"; "-" for none)
--   returns   {case_id, status, score, sequence number of the last announcement}, or
--             {"ALREADY_EXISTS", case_id} / an INVALID_ARGUMENT error reply
--
-- Every write is in the one script, so Redis applies it atomically (one writer, like
-- the daemon's loop) and appends its effects to the AOF as one MULTI/EXEC.

local ol = KEYS[1]
local order_id, line = string.match(ol, "^ol:(.*):([^:]*)$")
local consumer, merchant, category = ARGV[1], ARGV[2], ARGV[3]
local ctype, delivery = ARGV[4], ARGV[5]
local paid, refund = tonumber(ARGV[6]), tonumber(ARGV[7])
local reason = ARGV[8]
local anomalies, evidence = ARGV[9], ARGV[10]
local violations, complaint_bp, refund_only_30d = tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])

-- CaseMachine.validate: required fields and money bounds (INVALID_ARGUMENT).
if not order_id or order_id == "" or consumer == "" or merchant == "" or category == "" then
  return redis.error_reply("INVALID_ARGUMENT order_id, consumer_id, merchant_id and category are required")
end
if not paid or paid <= 0 then return redis.error_reply("INVALID_ARGUMENT paid_amount must be > 0") end
if not refund or refund <= 0 or refund > paid then
  return redis.error_reply("INVALID_ARGUMENT refund_amount must be in 1..paid_amount")
end
if not complaint_bp or complaint_bp > 10000 then
  return redis.error_reply("INVALID_ARGUMENT merchant_complaint_rate_bp must be 0..10000")
end

-- CaseStore: one open case per order line.
local existing = redis.call("GET", ol)
if existing then
  redis.call("INCR", "stats:already_exists")
  return {"ALREADY_EXISTS", existing}
end

-- The store assigns the case id.
local case_id = "c" .. redis.call("INCR", "next_case_id")
redis.call("SET", ol, case_id)

-- Clock (the daemon passes `now` into the engine).
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- InterventionPolicy.failedGates: eligibility (SPEC §3), with EngineConfig's excluded categories.
local gates = {}
if ctype ~= "REFUND_ONLY" then gates[#gates + 1] = "NOT_REFUND_ONLY" end
if refund ~= paid then gates[#gates + 1] = "PARTIAL_REFUND" end
if delivery ~= "SIGNED" then gates[#gates + 1] = "NOT_SIGNED" end
if category == "fresh_produce" or category == "flowers_horticulture" or category == "live_pets" then gates[#gates + 1] = "EXCLUDED_CATEGORY" end

-- InterventionPolicy.score: PolicyWeights' defaults, the same weighted sum. (The weight
-- tables are built only when there are signals to weigh: a script has no state between
-- calls, so every table it builds is built on every call.)
local THRESHOLD, TEXT_PERCENT = 60, 40
local reasons = {}
local logistics = 0
if anomalies ~= "-" then
  local W_LOGISTICS = {LOST_IN_TRANSIT = 100, DAMAGED_IN_TRANSIT = 80, WRONG_ITEM = 80, PARTIAL_DELIVERY = 60, LATE_DELIVERY = 20}
  for name in string.gmatch(anomalies, "[^,]+") do
    local points = W_LOGISTICS[name] or 0
    if points > 0 then logistics = logistics + points; reasons[#reasons + 1] = "LOGISTICS_" .. name end
  end
end
-- Each tag counts once, at its strongest medium (text earns 40 %).
local best = {}
if evidence ~= "-" then
  local W_TAG = {DEFECT = 60, DAMAGE = 60, WRONG_ITEM = 60, MISSING_PART = 50, NOT_AS_DESCRIBED = 45}
  for kind, tag in string.gmatch(evidence, "([^,:]+):([^,]+)") do
    local base = W_TAG[tag] or 0
    local points = kind == "TEXT" and math.floor(base * TEXT_PERCENT / 100) or base
    if points > 0 and (not best[tag] or points > best[tag].points) then best[tag] = {points = points, kind = kind} end
  end
end
local quality = 0
for tag, b in pairs(best) do quality = quality + b.points; reasons[#reasons + 1] = "EVIDENCE_" .. tag .. "_" .. b.kind end
-- The merchant's record corroborates evidence, never replaces it.
if quality > 0 then
  if violations > 0 then quality = quality + math.min(violations * 10, 30); reasons[#reasons + 1] = "MERCHANT_VIOLATIONS_90D" end
  if complaint_bp >= 300 then quality = quality + 20; reasons[#reasons + 1] = "MERCHANT_COMPLAINT_RATE_HIGH" end
end
local penalty = 0
if refund_only_30d > 3 then
  penalty = math.min((refund_only_30d - 3) * 15, 60); reasons[#reasons + 1] = "CONSUMER_REFUND_ONLY_FREQUENT"
end
local issue_kind = logistics >= quality and "LOGISTICS" or "QUALITY"
local score = math.max(logistics, quality) - penalty
local intervene = #gates == 0 and score >= THRESHOLD
if #gates > 0 then reasons = gates elseif not intervene then reasons[#reasons + 1] = "NO_ISSUE_DETECTED" end

-- CaseMachine.create: AWAITING_MERCHANT_REVIEW with the 48 h review clock, then the
-- proposal at once when the judgement intervenes (12 h; the review clock pauses).
local status, deadline_kind, due = "AWAITING_MERCHANT_REVIEW", "MERCHANT_REVIEW", now + 48 * 3600 * 1000
local fields = {
  "case_id", case_id, "order_id", order_id, "order_line_id", line, "consumer_id", consumer,
  "merchant_id", merchant, "category", category, "reason", reason, "type", ctype, "delivery", delivery,
  "paid_amount", paid, "refund_amount", refund, "return_shipping_payer", "CONSUMER",
  "signals_logistics", anomalies, "signals_evidence", evidence, "merchant_violations_90d", violations,
  "merchant_complaint_rate_bp", complaint_bp, "consumer_refund_only_30d", refund_only_30d,
  "judgement_score", score, "judgement_reasons", table.concat(reasons, ","),
  "created_at", now, "updated_at", now, "version", 0,
}
if intervene then
  status, deadline_kind, due = "PROPOSAL_PENDING", "PROPOSAL_EXPIRY", now + 12 * 3600 * 1000
  for _, v in ipairs({"proposal_state", "PENDING", "proposal_issued_at", now, "proposal_expires_at", due,
                      "proposal_issue_kind", issue_kind, "proposal_score", score,
                      "review_remaining_ms", 48 * 3600 * 1000}) do fields[#fields + 1] = v end
end
for _, v in ipairs({"status", status, "deadline_kind", deadline_kind, "deadline_at", due}) do fields[#fields + 1] = v end

-- The case itself (the store's record).
redis.call("HSET", "case:" .. case_id, unpack(fields))
-- Deadlines: the priority queue keyed by time.
redis.call("ZADD", "deadlines", due, case_id)
-- History: the append-only log of steps (time|actor|action|from|to|note).
local history = "history:" .. case_id
redis.call("RPUSH", history, now .. "|CONSUMER|CREATE||AWAITING_MERCHANT_REVIEW|" .. reason)
if intervene then
  redis.call("RPUSH", history, now .. "|PLATFORM|ISSUE_PROPOSAL|AWAITING_MERCHANT_REVIEW|PROPOSAL_PENDING|" .. table.concat(reasons, ","))
end

-- Announcements: a sequence number that increases by exactly one per announcement, then PUBLISH.
local function announce(topic)
  local seq = redis.call("INCR", "announce:seq")
  redis.call("PUBLISH", topic, seq .. "|" .. topic .. "|" .. case_id .. "|" .. order_id .. "|" .. merchant .. "|" .. status .. "|" .. due)
  return seq
end
local seq = announce("case.created")
if intervene then seq = announce("proposal.issued") end

return {case_id, status, score, seq}
