// Command kstatus prints the verdict of kstatus (sigs.k8s.io/cli-utils/pkg/kstatus,
// the library behind Flux's `wait` and `healthChecks`) on live EcsPowerPolicies, read
// from the API server: one JSON object per policy, sorted by name.
//
//	kstatus --kubeconfig FILE --namespace NS [NAME...]
//
// Without names it reads every policy of the namespace. A named policy that does not
// exist is reported with kstatus's NotFound status.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

var policies = schema.GroupVersionResource{
	Group:    "ecspower.dev",
	Version:  "v1alpha1",
	Resource: "ecspowerpolicies",
}

// verdict is one line of output: kstatus's reading, with the fields of the same read
// of the object that it depends on, so a caller can tell which status it judged.
type verdict struct {
	Name               string `json:"name"`
	Status             string `json:"status"`
	Message            string `json:"message"`
	Phase              string `json:"phase,omitempty"`
	Generation         int64  `json:"generation,omitempty"`
	ObservedGeneration int64  `json:"observedGeneration,omitempty"`
}

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the API server")
	namespace := flag.String("namespace", "", "namespace of the policies (required)")
	flag.Parse()
	if *namespace == "" {
		fail("--namespace is required")
	}
	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fail("kubeconfig %q: %v", *kubeconfig, err)
	}
	client, err := dynamic.NewForConfig(config)
	if err != nil {
		fail("client: %v", err)
	}
	api := client.Resource(policies).Namespace(*namespace)
	ctx := context.Background()

	var objects []unstructured.Unstructured
	var verdicts []verdict
	if names := flag.Args(); len(names) > 0 {
		for _, name := range names {
			object, err := api.Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				verdicts = append(verdicts, verdict{Name: name, Status: status.NotFoundStatus.String(), Message: "not found"})
				continue
			}
			if err != nil {
				fail("get %s/%s: %v", *namespace, name, err)
			}
			objects = append(objects, *object)
		}
	} else {
		list, err := api.List(ctx, metav1.ListOptions{})
		if err != nil {
			fail("list policies in %s: %v", *namespace, err)
		}
		objects = list.Items
	}
	for i := range objects {
		result, err := status.Compute(&objects[i])
		if err != nil {
			fail("kstatus on %s/%s: %v", *namespace, objects[i].GetName(), err)
		}
		phase, _, _ := unstructured.NestedString(objects[i].Object, "status", "phase")
		observed, _, _ := unstructured.NestedInt64(objects[i].Object, "status", "observedGeneration")
		verdicts = append(verdicts, verdict{
			Name:               objects[i].GetName(),
			Status:             result.Status.String(),
			Message:            result.Message,
			Phase:              phase,
			Generation:         objects[i].GetGeneration(),
			ObservedGeneration: observed,
		})
	}
	sort.Slice(verdicts, func(a, b int) bool { return verdicts[a].Name < verdicts[b].Name })
	out := json.NewEncoder(os.Stdout)
	for _, v := range verdicts {
		if err := out.Encode(v); err != nil {
			fail("write: %v", err)
		}
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kstatus: "+format+"\n", args...)
	os.Exit(1)
}
