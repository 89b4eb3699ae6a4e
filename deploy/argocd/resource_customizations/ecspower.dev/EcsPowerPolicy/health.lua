-- Argo CD health check of ecspower.dev/EcsPowerPolicy (ecs-power-operator).
-- The spec not yet synced: Progressing. spec.suspend: Suspended. Stalled (a person
-- must act) or Degraded: Degraded. Ready: Healthy. Anything else: Progressing.
local hs = {}

local function condition(type)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function holds(type)
  local c = condition(type)
  if c ~= nil and c.status == "True" then
    return c
  end
  return nil
end

local generation = obj.metadata.generation
local observed = nil
if obj.status ~= nil then
  observed = obj.status.observedGeneration
end
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to sync generation " .. generation
  return hs
end

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "spec.suspend is true: the operator stops nothing"
  return hs
end

local trouble = holds("Stalled") or holds("Degraded")
if trouble ~= nil then
  hs.status = "Degraded"
  hs.message = trouble.reason .. ": " .. trouble.message
  return hs
end

local ready = holds("Ready")
if ready ~= nil then
  hs.status = "Healthy"
  hs.message = ready.message
  return hs
end

hs.status = "Progressing"
local reconciling = holds("Reconciling")
if reconciling ~= nil then
  hs.message = reconciling.message
else
  hs.message = "Waiting for the policy to be Ready"
end
return hs
