// Command argocd-health runs an Argo CD resource health check (Lua) in gopher-lua,
// the Lua runtime Argo CD embeds, the way Argo CD calls it: the object as the global
// table `obj`, the script returning a table with `status` and `message`.
//
//	argocd-health test DIR   # DIR/health.lua against the cases of DIR/health_test.yaml
//	argocd-health eval LUA   # LUA on each object of a JSON List or object on stdin
//
// health_test.yaml is laid out as in Argo CD's resource_customizations/<group>/<kind>/
// folders: `tests: [{healthStatus: {status, message}, inputPath}]`. `eval` prints one
// JSON object per input object: name, status, message.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

// health is what a health check returns.
type health struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

type testFile struct {
	Tests []struct {
		HealthStatus health `json:"healthStatus"`
		InputPath    string `json:"inputPath"`
	} `json:"tests"`
}

func main() {
	if len(os.Args) != 3 {
		fail("usage: argocd-health test DIR | argocd-health eval LUA < objects.json")
	}
	switch os.Args[1] {
	case "test":
		os.Exit(runTests(os.Args[2]))
	case "eval":
		evalStdin(os.Args[2])
	default:
		fail("unknown command %q: want test or eval", os.Args[1])
	}
}

func runTests(dir string) int {
	script := readFile(filepath.Join(dir, "health.lua"))
	var cases testFile
	if err := yaml.Unmarshal(readFile(filepath.Join(dir, "health_test.yaml")), &cases); err != nil {
		fail("health_test.yaml: %v", err)
	}
	if len(cases.Tests) == 0 {
		fail("%s/health_test.yaml has no tests", dir)
	}
	failed := 0
	for _, c := range cases.Tests {
		var object map[string]any
		if err := yaml.Unmarshal(readFile(filepath.Join(dir, c.InputPath)), &object); err != nil {
			fail("%s: %v", c.InputPath, err)
		}
		got, err := check(string(script), object)
		switch {
		case err != nil:
			fmt.Printf("FAIL %s: %v\n", c.InputPath, err)
			failed++
		case got != c.HealthStatus:
			fmt.Printf("FAIL %s: want %+v, got %+v\n", c.InputPath, c.HealthStatus, got)
			failed++
		default:
			fmt.Printf("ok   %s: %s\n", c.InputPath, got.Status)
		}
	}
	fmt.Printf("%d of %d cases passed\n", len(cases.Tests)-failed, len(cases.Tests))
	if failed > 0 {
		return 1
	}
	return 0
}

func evalStdin(luaPath string) {
	script := string(readFile(luaPath))
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("stdin: %v", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(input, &doc); err != nil {
		fail("stdin is not a JSON object: %v", err)
	}
	objects := []any{doc}
	if items, ok := doc["items"].([]any); ok {
		objects = items
	}
	out := json.NewEncoder(os.Stdout)
	for _, o := range objects {
		object, _ := o.(map[string]any)
		metadata, _ := object["metadata"].(map[string]any)
		got, err := check(script, object)
		if err != nil {
			fail("%v: %v", metadata["name"], err)
		}
		line := map[string]any{"name": metadata["name"], "status": got.Status, "message": got.Message}
		if err := out.Encode(line); err != nil {
			fail("write: %v", err)
		}
	}
}

// check runs the script on one object in a fresh state, as Argo CD does, with the
// libraries Argo CD opens for health checks.
func check(script string, object map[string]any) (health, error) {
	state := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer state.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath},
	} {
		state.Push(state.NewFunction(lib.open))
		state.Push(lua.LString(lib.name))
		state.Call(1, 0)
	}
	state.SetGlobal("obj", toLua(state, object))
	if err := state.DoString(script); err != nil {
		return health{}, err
	}
	table, ok := state.Get(-1).(*lua.LTable)
	if !ok {
		return health{}, fmt.Errorf("the script returned %s, not a table", state.Get(-1).Type())
	}
	status, _ := table.RawGetString("status").(lua.LString)
	message, _ := table.RawGetString("message").(lua.LString)
	switch status {
	case "Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown":
	default:
		return health{}, fmt.Errorf("status %q is not an Argo CD health status", status)
	}
	return health{Status: string(status), Message: string(message)}, nil
}

// toLua converts decoded JSON as Argo CD does: objects and arrays become tables
// (arrays from index 1), numbers float64, null nil.
func toLua(state *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case map[string]any:
		table := state.NewTable()
		for key, item := range v {
			table.RawSetString(key, toLua(state, item))
		}
		return table
	case []any:
		table := state.NewTable()
		for _, item := range v {
			table.Append(toLua(state, item))
		}
		return table
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case nil:
		return lua.LNil
	default:
		return lua.LString(fmt.Sprint(v))
	}
}

func readFile(path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		fail("%v", err)
	}
	return data
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "argocd-health: "+format+"\n", args...)
	os.Exit(2)
}
