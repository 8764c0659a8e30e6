-- Per-user profile (cache: every key gets the profile TTL again on each write).
-- Group kind 'u' (per user): counts, last seen, button affinities (fields button:<id>), recent videos
--   (distinct, clicked or converted, newest first, capped). Event: {partition, offset, kind, button,
--   video_id, event_time_ms}. Kind 'U': the same as totals (user_totals).
-- Returns one character per event: '1' applied now, '0' not (a replay).

local affinity_field = FieldNames('button:')

-- What both forms write once counted: counts (field = n), the latest event time and its video when
-- later than the stored one, recent videos (oldest first).
local function write_profile(base, counts, t_ms, video_id, recent)
  local profile_key = base .. '${profile}'
  local recent_key = base .. '${recent}'
  hincr_all(profile_key, counts)
  local last_seen = tonumber(rcall('HGET', profile_key, 'last_seen_ms') or '') or -1
  if t_ms > last_seen then
    rcall('HSET', profile_key, 'last_seen_ms', string.format('%d', t_ms), 'last_video', video_id)
  end
  rcall('EXPIRE', profile_key, int(req.profile_ttl))
  if #recent > 0 then
    for _, v in ipairs(recent) do
      rcall('LREM', recent_key, '0', v)
    end
    local length = 0
    local i = 1
    while i <= #recent do
      local j = math.min(i + 499, #recent)
      length = rcall('LPUSH', recent_key, unpack(recent, i, j))
      i = j + 1
    end
    if length > req.recent_cap then
      rcall('LTRIM', recent_key, 0, req.recent_cap - 1)
    end
    rcall('EXPIRE', recent_key, int(req.profile_ttl))
  end
end

local function user(base, events)
  local counts, last_index, flags = {}, {}, {}
  local t_max, t_video = nil, nil
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
      if t_max == nil or t_ms > t_max then
        t_max, t_video = t_ms, video_id
      end
    else
      flags[i] = '0'
    end
  end
  if applied == 0 then
    return table.concat(flags)
  end
  local recent = keys_of(last_index)
  table.sort(recent, function(a, b) return last_index[a] < last_index[b] end)
  write_profile(base, counts, t_max, t_video, recent)
  return table.concat(flags)
end

-- Group kind 'U': one user's events as totals the consumer counted (every event fresh: req.from).
-- {events, counts = {field = n}, the latest event time (ms), its video (the first event at that
-- time), videos clicked or converted, by their last such event, oldest first}.
local function user_totals(base, agg)
  write_profile(base, agg[2], agg[3], agg[4], agg[5])
  return string.rep('1', agg[1])
end

return run_groups({u = user, U = user_totals})
