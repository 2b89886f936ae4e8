-- Argo CD health check for modelops.io/TrainingJob.
--
-- Reads status.phase and the conditions the operator writes (kstatus Ready,
-- Reconciling, Stalled; Created, Running, Succeeded, Failed, Suspended; see
-- docs/api.md, "TrainingJob status.conditions"):
--   Progressing  no status yet, status older than metadata.generation,
--                Pending, Running, restarting or suspending (pods stopping)
--   Degraded     Failed=True (backoffLimit used up, deadline passed): the
--                message names the failed rank and why; or Stalled=True
--                (the job cannot start without intervention)
--   Suspended    Suspended=True: spec.suspend, or waiting for Kueue admission
--   Healthy      Succeeded (for a TrainingJob, Ready=True means succeeded)
-- Written for Lua 5.1 (Argo CD runs gopher-lua); tested in tests/ops.

local function condition(status, ctype)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

local function is_true(status, ctype)
  local c = condition(status, ctype)
  return c ~= nil and c.status == "True"
end

-- The conditions decide; status.phase only when there are none. (Phase
-- Suspended also covers Suspending, while the pods still stop.)
local function state(status, ctype, phase)
  if status.conditions ~= nil and status.conditions[1] ~= nil then
    return is_true(status, ctype)
  end
  return status.phase == phase
end

local function describe(c, fallback)
  if c == nil then
    return fallback
  end
  local text = c.message
  if text == nil or text == "" then
    text = fallback
  end
  if c.reason ~= nil and c.reason ~= "" then
    return c.reason .. ": " .. text
  end
  return text
end

-- "rank 1 (pod x-a3-1) OOMKilled, exit code 137" from status.failedPods.
local function first_failure(status)
  if status.failedPods == nil or status.failedPods[1] == nil then
    return nil
  end
  local p = status.failedPods[1]
  local text = "pod " .. tostring(p.pod)
  if p.rank ~= nil then
    text = "rank " .. tostring(p.rank) .. " (" .. text .. ")"
  end
  if p.reason ~= nil then
    text = text .. " " .. p.reason
  end
  if p.exitCode ~= nil then
    text = text .. ", exit code " .. tostring(p.exitCode)
  end
  return text
end

local hs = {}
local status = obj.status
if status == nil or (status.conditions == nil and status.phase == nil) then
  hs.status = "Progressing"
  hs.message = "Waiting for the modelops operator to report status"
  return hs
end

local generation = obj.metadata.generation
local observed = status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the modelops operator to observe generation " .. tostring(generation)
  return hs
end

if state(status, "Failed", "Failed") then
  hs.status = "Degraded"
  -- Stalled carries the longest account of the failure (rank, exit, log lines).
  if is_true(status, "Stalled") then
    hs.message = describe(condition(status, "Stalled"), "training failed")
  else
    hs.message = describe(condition(status, "Failed"), "training failed")
  end
  local failure = first_failure(status)
  if failure ~= nil and string.find(hs.message, "rank", 1, true) == nil then
    hs.message = hs.message .. "; first failure: " .. failure
  end
  return hs
end

if is_true(status, "Stalled") then
  hs.status = "Degraded"
  hs.message = describe(condition(status, "Stalled"), "no progress possible")
  return hs
end

if state(status, "Succeeded", "Succeeded") or is_true(status, "Ready") then
  hs.status = "Healthy"
  if is_true(status, "Ready") then
    hs.message = describe(condition(status, "Ready"), "training succeeded")
  else
    hs.message = describe(condition(status, "Succeeded"), "training succeeded")
  end
  local version = status.outputVersion
  if version ~= nil and string.find(hs.message, "version " .. tostring(version), 1, true) == nil then
    hs.message = hs.message .. " (output version " .. tostring(version) .. ")"
  end
  return hs
end

if state(status, "Suspended", "Suspended") then
  hs.status = "Suspended"
  hs.message = describe(condition(status, "Suspended"), "suspended")
  return hs
end

hs.status = "Progressing"
if is_true(status, "Running") then
  hs.message = describe(condition(status, "Running"), "training")
elseif is_true(status, "Reconciling") then
  hs.message = describe(condition(status, "Reconciling"), "in progress")
elseif condition(status, "Ready") ~= nil then
  hs.message = describe(condition(status, "Ready"), "in progress")
else
  hs.message = "phase " .. (status.phase or "unknown")
end
return hs
