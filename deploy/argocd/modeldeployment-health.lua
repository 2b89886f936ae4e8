-- Argo CD health check for modelops.io/ModelDeployment.
--
-- Reads the kstatus conditions the operator writes (Ready, Reconciling,
-- Stalled; see docs/api.md, "status.conditions"):
--   Progressing  no status yet, status older than metadata.generation,
--                Reconciling=True (rollout or scaling under way), or not
--                Ready for no blocking reason yet (pods starting)
--   Degraded     Stalled=True: progress needs intervention; the message is
--                the Stalled reason and message (scheduler message, pull
--                error, crash loop)
--   Healthy      Ready=True with nothing under way
-- and, for gated rollouts (status.rollout.phase; docs/rollouts.md):
--   Progressing  Waiting, Shadow, Canary, Promoting: a candidate is under analysis
--                or replacing the stable version (the stable version serves)
--   Suspended    Paused (spec.rollout.control.paused)
--   Degraded     RolledBack when the spec pins the rejected version: Git asks for a
--                version that does not run, and only a change in Git resolves that
--   Healthy      RolledBack under version "latest": the stable version serves, the
--                rejected one waits for a newer version; the message says so
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

local function describe(c, fallback)
  local text = c.message
  if text == nil or text == "" then
    text = fallback
  end
  if c.reason ~= nil and c.reason ~= "" then
    return c.reason .. ": " .. text
  end
  return text
end

local hs = {}
local status = obj.status
if status == nil or status.conditions == nil then
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

local stalled = condition(status, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled, "no progress possible")
  return hs
end

local rollout = status.rollout
local phase = nil
if rollout ~= nil then
  phase = rollout.phase
end
local function rollout_text(fallback)
  local text = rollout.message
  if text == nil or text == "" then
    text = fallback
  end
  return text
end

if phase == "Paused" then
  hs.status = "Suspended"
  hs.message = "Paused: " .. rollout_text("rollout paused by spec.rollout.control.paused")
  return hs
end

if phase == "Waiting" or phase == "Shadow" or phase == "Canary" or phase == "Promoting" then
  hs.status = "Progressing"
  hs.message = phase .. ": " .. rollout_text("candidate version under analysis")
  return hs
end

local rejected = nil
if phase == "RolledBack" and rollout.rejected ~= nil then
  rejected = rollout.rejected.version
end
local pinned = nil
if obj.spec ~= nil and obj.spec.model ~= nil then
  pinned = obj.spec.model.version
end
if rejected ~= nil and pinned ~= nil and pinned == rejected then
  hs.status = "Degraded"
  hs.message = "RolledBack: spec.model.version pins version " .. rejected ..
    ", which was rolled back: " .. rollout_text("see status.rollout")
  return hs
end

local reconciling = condition(status, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling, "reconciling")
  return hs
end

local ready = condition(status, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or ""
  local drifted = condition(status, "Drifted")
  if drifted ~= nil and drifted.status == "True" and drifted.message ~= nil then
    -- Drift is about the model's inputs, not the deployment: still Healthy.
    hs.message = hs.message .. "; " .. drifted.message
  end
  if rejected ~= nil then
    hs.message = hs.message .. "; " .. rollout_text("version " .. rejected .. " was rolled back")
  end
  return hs
end

hs.status = "Progressing"
if ready ~= nil then
  hs.message = describe(ready, "not ready")
else
  hs.message = "Waiting for the Ready condition"
end
return hs
