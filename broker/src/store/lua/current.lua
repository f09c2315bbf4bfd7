-- Which of the given deliveries (pairs of id, delivery number in ARGV[2..]) are still in flight
-- with their deadline ahead: a stream's bound on unacked messages. Returns 1 or 0 per pair. Two
-- calls for all of them (common.lua `current_deliveries`).
local ids, rcs = receipts(2)
local live = current_deliveries(ids, rcs, false, now_ms())
local out = {}
for i = 1, #ids do out[i] = live[i] and 1 or 0 end
return out
