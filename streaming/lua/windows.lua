-- Windowed counters when the windows family has its own Redis (CLICKPULSE_REDIS_URL_WINDOWS); on a
-- shared Redis, live.lua applies them in the same call as the live counters.
-- Group kind 'v' (per video): event {partition, offset, kind, button, minute, hour, day, user_id}.
-- Group kind 'g' (the {global} slot): event {partition, offset, kind, button, surface, slot, hour}.
-- Only events within the allowed lateness are sent. Returns the number of events applied per group.

local windows = WindowWriter()

local function video(base, events)
  local applied = 0
  for _, e in ipairs(events) do
    if wm.fresh(e[1], e[2]) then
      applied = applied + 1
      windows.video_event(e[3], e[4], e[5], e[6], e[7], e[8])
    end
  end
  windows.video_write(base)
  return applied
end

local function global(base, events)
  local applied = 0
  for _, e in ipairs(events) do
    if wm.fresh(e[1], e[2]) then
      applied = applied + 1
      windows.global_event(e[3], e[4], e[5], e[6], e[7])
    end
  end
  windows.global_write(base)
  return applied
end

return run_groups({v = video, g = global})
