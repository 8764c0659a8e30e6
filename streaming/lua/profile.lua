-- Per-user profile (cache: every key gets the profile TTL again on each write).
-- Group kind 'u' (per user): counts, last seen, button affinities (fields button:<id>), recent videos
--   (distinct, clicked or converted, newest first, capped). Event: {partition, offset, kind, button,
--   video_id, event_time_ms}.
-- Returns one character per event: '1' applied now, '0' not (a replay).

local affinity_field = FieldNames('button:')

local function user(base, events)
  local profile_key = base .. '${profile}'
  local recent_key = base .. '${recent}'
  local last_seen = nil
  local counts, last_index, flags = {}, {}, {}
  local last_video = nil
  local applied = 0
  for i, e in ipairs(events) do
    local p, o, kind, button, video_id, t_ms = e[1], e[2], e[3], e[4], e[5], e[6]
    if wm.fresh(p, o) then
      applied = applied + 1
      flags[i] = '1'
      count(counts, METRIC[kind])
      if kind == 'c' and button ~= '' then
        count(counts, affinity_field(button))
      end
      if kind ~= 'i' then
        last_index[video_id] = i
      end
      if last_seen == nil then
        last_seen = tonumber(redis.call('HGET', profile_key, 'last_seen_ms') or '') or -1
      end
      if t_ms > last_seen then
        last_seen = t_ms
        last_video = video_id
      end
    else
      flags[i] = '0'
    end
  end
  if applied == 0 then
    return table.concat(flags)
  end
  hincr_all(profile_key, counts)
  if last_video ~= nil then
    redis.call('HSET', profile_key, 'last_seen_ms', string.format('%d', last_seen), 'last_video', last_video)
  end
  redis.call('EXPIRE', profile_key, int(req.profile_ttl))
  local recent = keys_of(last_index)
  if #recent > 0 then
    table.sort(recent, function(a, b) return last_index[a] < last_index[b] end)
    for _, video_id in ipairs(recent) do
      redis.call('LREM', recent_key, '0', video_id)
    end
    local length = 0
    local i = 1
    while i <= #recent do
      local j = math.min(i + 499, #recent)
      length = redis.call('LPUSH', recent_key, unpack(recent, i, j))
      i = j + 1
    end
    if length > req.recent_cap then
      redis.call('LTRIM', recent_key, 0, req.recent_cap - 1)
    end
    redis.call('EXPIRE', recent_key, int(req.profile_ttl))
  end
  return table.concat(flags)
end

local gap = wm.gap(req.after)
if gap then
  return redis.error_reply(gap)
end
local out = {}
for gi, events in ipairs(req.g) do
  out[gi] = user(KEYS[gi], events)
end
wm.save(req.upto)
return out
