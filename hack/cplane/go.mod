module ecs-power-operator/hack/cplane

go 1.24.0
