r"""The Lua scripts of `RedisJournal`: one per operation, each atomic on the server.

Every script takes the campaign's keys in the order of `PARTS` (`KEYS[1]` is `sent`,
...), so that in a Redis Cluster they all hash to the campaign's slot (the `{name}`
hash tag of `campaign_key`). The state they share:

- `sent`: a bitmap, bit `p` set once position `p` was sent. Final: nothing unsets it.
- `digests`: a string, two bytes per position (`p` at offset `2p`): a digest of the
  message journaled there, checked when that position is reserved again.
- `state`: a hash, position -> `kind US key [US class US code]` for a position not
  (yet) sent: `R` reserved, `F` failed, `U` unknown, `N` stopped before sending.
- `counts`: a hash of counters kept by the same scripts: `sent`, `reserved`,
  `unknown`, `failed` and `failed:<class>`, so that a status is read in O(1).
- `meta`: a hash: `total`, `fingerprint`, `last` (the highest position journaled),
  `started_at`, `updated_at`.
- `kept`: with `keep_sent`, a hash position -> `id US key` of each message sent.
- `rate`: a hash, second (Redis TIME) -> messages recorded sent in it, trimmed to
  the last `RATE_WINDOW_S` seconds.

(US is the unit separator, \031; no field of a record may hold one.) A replayed
`record` finds the state it would write and changes nothing, so recording twice is
harmless; a sent bit is final, so a late failure never undoes a success.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DECLARE", "PARTS", "READ", "RECORD", "RESERVE", "STATUS"]

#: The parts of a campaign's keys, in the order the scripts take them as KEYS.
PARTS: Final = ("sent", "digests", "state", "counts", "meta", "kept", "rate")

# Shared by the scripts that change a position's state: the counters follow the state.
_COMMON: Final = r"""
local sent, digests, state, counts, meta, kept, rate =
    KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]

local function incr(field, by)
    local value = redis.call('HINCRBY', counts, field, by)
    if value == 0 and string.sub(field, 1, 7) == 'failed:' then
        redis.call('HDEL', counts, field)  -- a class no longer failing is not listed
    end
end

-- Take back the counters of a position's old state record (false: none).
local function forget(record)
    if not record then return end
    local kind = string.sub(record, 1, 1)
    if kind == 'R' then
        incr('reserved', -1)
    elseif kind == 'U' then
        incr('unknown', -1)
    elseif kind == 'F' then
        incr('failed', -1)
        incr('failed:' .. string.match(record, '^F\031[^\031]*\031([^\031]*)'), -1)
    end
end

local function note_last(position)
    local last = tonumber(redis.call('HGET', meta, 'last') or '-1')
    if position > last then redis.call('HSET', meta, 'last', position) end
end
"""

RESERVE: Final = (
    _COMMON
    + r"""
-- ARGV: start, count, digests (2 bytes each), resend_unknown, keep_sent, key...
local start, count = tonumber(ARGV[1]), tonumber(ARGV[2])
local given, resend, keep = ARGV[3], ARGV[4] == '1', ARGV[5] == '1'
local stored = redis.call('GETRANGE', digests, 2 * start, 2 * (start + count) - 1)
local bits, records = {}, {}
-- First the whole batch is checked: a mismatch anywhere reserves nothing of it.
for i = 0, count - 1 do
    local position = start + i
    local bit = redis.call('GETBIT', sent, position)
    local record = false
    if bit == 0 then record = redis.call('HGET', state, position) end
    bits[i], records[i] = bit, record
    if (bit == 1 or record)
        and string.sub(stored, 2 * i + 1, 2 * i + 2) ~= string.sub(given, 2 * i + 1, 2 * i + 2)
    then
        return {'mismatch', position}
    end
end
local codes, ids = {}, {}
for i = 0, count - 1 do
    local position, record = start + i, records[i]
    local kind = record and string.sub(record, 1, 1)
    if bits[i] == 1 then
        codes[#codes + 1] = 's'
        if keep then ids[#ids + 1] = redis.call('HGET', kept, position) or '' end
    elseif (kind == 'R' or kind == 'U') and not resend then
        codes[#codes + 1] = 'u'  -- a crash, or another process sending it now
    else
        forget(record)
        incr('reserved', 1)
        redis.call('HSET', state, position, 'R\031' .. ARGV[6 + i])
        if not record then
            redis.call('SETRANGE', digests, 2 * position, string.sub(given, 2 * i + 1, 2 * i + 2))
        end
        codes[#codes + 1] = 'r'
    end
end
note_last(start + count - 1)
return {'ok', table.concat(codes), unpack(ids)}
"""
)

RECORD: Final = (
    _COMMON
    + r"""
-- ARGV: keep_sent, rate_window_s, then per result: position, kind (S F U N), digest,
-- key, error class, error code, message id.
local keep, window = ARGV[1] == '1', tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1])
local stamp = time[1] .. '.' .. string.format('%06d', tonumber(time[2]))
local sent_now, last = 0, -1
for i = 3, #ARGV, 7 do
    local position, kind, key = tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 3]
    if position > last then last = position end
    if redis.call('GETBIT', sent, position) == 0 then
        local record = redis.call('HGET', state, position)
        if not record then
            -- Recorded without a reservation here (state lost with an unsaved Redis):
            -- its digest is written now, so that a resume still checks its content.
            redis.call('SETRANGE', digests, 2 * position, ARGV[i + 2])
        end
        if kind == 'S' then
            forget(record)
            redis.call('HDEL', state, position)
            redis.call('SETBIT', sent, position, 1)
            incr('sent', 1)
            sent_now = sent_now + 1
            if keep then redis.call('HSET', kept, position, ARGV[i + 6] .. '\031' .. key) end
        else
            local value = kind .. '\031' .. key
            if kind == 'F' then value = value .. '\031' .. ARGV[i + 4] .. '\031' .. ARGV[i + 5] end
            if record ~= value then  -- a replay finds its own state: nothing changes
                forget(record)
                redis.call('HSET', state, position, value)
                if kind == 'F' then
                    incr('failed', 1)
                    incr('failed:' .. ARGV[i + 4], 1)
                elseif kind == 'U' then
                    incr('unknown', 1)
                end
            end
        end
    end
end
if sent_now > 0 then
    redis.call('HINCRBY', rate, now, sent_now)
    for _, second in ipairs(redis.call('HKEYS', rate)) do
        if tonumber(second) <= now - window then redis.call('HDEL', rate, second) end
    end
end
if last >= 0 then note_last(last) end
redis.call('HSETNX', meta, 'started_at', stamp)
redis.call('HSET', meta, 'updated_at', stamp)
return sent_now
"""
)

DECLARE: Final = r"""
-- KEYS: meta. ARGV: total, fingerprint ('' for "not given").
local meta = KEYS[1]
local total, fingerprint = ARGV[1], ARGV[2]
local had_total = redis.call('HGET', meta, 'total')
local had_fingerprint = redis.call('HGET', meta, 'fingerprint')
if total ~= '' and had_total and had_total ~= total then return {'total', had_total} end
if fingerprint ~= '' and had_fingerprint and had_fingerprint ~= fingerprint then
    return {'fingerprint', had_fingerprint}
end
if total ~= '' and not had_total then redis.call('HSET', meta, 'total', total) end
if fingerprint ~= '' and not had_fingerprint then
    redis.call('HSET', meta, 'fingerprint', fingerprint)
end
return {'ok'}
"""

STATUS: Final = r"""
-- KEYS: counts, meta, rate. ARGV: rate_window_s. One consistent snapshot.
local window = tonumber(ARGV[1])
local now = tonumber(redis.call('TIME')[1])
local in_window = 0
local seconds = redis.call('HGETALL', KEYS[3])
for i = 1, #seconds, 2 do
    local second = tonumber(seconds[i])
    if second > now - window and second <= now then
        in_window = in_window + tonumber(seconds[i + 1])
    end
end
return {
    redis.call('HGETALL', KEYS[1]),
    redis.call('HMGET', KEYS[2], 'total', 'fingerprint', 'started_at', 'updated_at', 'last'),
    in_window,
}
"""

READ: Final = r"""
-- KEYS: sent, state, kept. ARGV: start, stop (excluded), keep_sent.
-- Returns a code per position ('.' never journaled, 's' sent, else the state's kind)
-- and, in order, a detail per journaled position: its state record, or its kept id.
local start, stop, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1'
local codes, details = {}, {}
for position = start, stop - 1 do
    if redis.call('GETBIT', KEYS[1], position) == 1 then
        codes[#codes + 1] = 's'
        details[#details + 1] = keep and (redis.call('HGET', KEYS[3], position) or '') or ''
    else
        local record = redis.call('HGET', KEYS[2], position)
        if record then
            codes[#codes + 1] = string.sub(record, 1, 1)
            details[#details + 1] = record
        else
            codes[#codes + 1] = '.'
        end
    end
end
return {table.concat(codes), details}
"""
