// Command deploy-check validates the deploy files offline, without a cluster or a Docker engine.
//
//	deploy-check manifests FILE.yaml...  decodes each object strictly against the API types of a
//	                                     current Kubernetes release (k8s.io/api): an unknown field, a
//	                                     duplicate field or a wrong type is an error.
//	deploy-check dockerfile FILE         parses the Dockerfile with BuildKit's parser and runs
//	                                     BuildKit's lint rules (those of `docker build --check`), plus
//	                                     this project's policy: pinned base images, a non-root USER in
//	                                     the final stage, no ADD of URLs, an ENTRYPOINT in exec form.
//
// It prints one "ok ..." line per checked item and exits 1 on the first problem.
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

func main() {
	if len(os.Args) < 3 {
		fail("usage: deploy-check manifests FILE.yaml... | deploy-check dockerfile FILE")
	}
	switch os.Args[1] {
	case "manifests":
		checkManifests(os.Args[2:])
	case "dockerfile":
		checkDockerfile(os.Args[2])
	default:
		fail("unknown mode %q", os.Args[1])
	}
}

func checkManifests(paths []string) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme, policyv1.AddToScheme} {
		if err := add(scheme); err != nil {
			fail("scheme: %v", err)
		}
	}
	decoder := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			fail("%s: %v", path, err)
		}
		reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for {
			doc, err := reader.Read()
			if err != nil {
				break
			}
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			obj, gvk, err := decoder.Decode(doc, nil, nil)
			if err != nil {
				fail("%s: %v", path, err)
			}
			name := ""
			if named, ok := obj.(interface{ GetName() string }); ok {
				name = named.GetName()
			}
			fmt.Printf("ok %s %s %s\n", path, gvk.Kind, name)
		}
	}
}

func checkDockerfile(path string) {
	file, err := os.Open(path)
	if err != nil {
		fail("%v", err)
	}
	defer file.Close()
	result, err := parser.Parse(file)
	if err != nil {
		fail("%s: %v", path, err)
	}
	var problems []string
	for _, warning := range result.Warnings {
		problems = append(problems, fmt.Sprintf("line %d: %s", warning.Location.Start.Line, warning.Short))
	}
	lint := linter.New(&linter.Config{
		ExperimentalAll: true,
		Warn: func(rule, _, _, message string, location []parser.Range) {
			line := 0
			if len(location) > 0 {
				line = location[0].Start.Line
			}
			problems = append(problems, fmt.Sprintf("line %d: %s: %s", line, rule, message))
		},
	})
	stages, _, err := instructions.Parse(result.AST, lint)
	if err != nil {
		fail("%s: %v", path, err)
	}
	if len(stages) == 0 {
		fail("%s: no stage", path)
	}
	for _, stage := range stages {
		image := stage.BaseName
		if image != "scratch" && !isStageName(stages, image) && (!strings.Contains(image, ":") || strings.HasSuffix(image, ":latest")) {
			problems = append(problems, fmt.Sprintf("stage %q: base image %q is not pinned to a version", stage.Name, image))
		}
		for _, command := range stage.Commands {
			if add, ok := command.(*instructions.AddCommand); ok {
				for _, source := range add.SourcePaths {
					if strings.Contains(source, "://") {
						problems = append(problems, fmt.Sprintf("ADD of a URL (%s): download in a RUN step with a checksum", source))
					}
				}
			}
		}
	}
	final := stages[len(stages)-1]
	user, entrypoint := "", false
	for _, command := range final.Commands {
		switch c := command.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.EntrypointCommand:
			entrypoint = !c.PrependShell
		}
	}
	if user == "" || user == "root" || user == "0" || strings.HasPrefix(user, "0:") {
		problems = append(problems, "the final stage must switch to a non-root USER")
	}
	if !entrypoint {
		problems = append(problems, "the final stage needs an ENTRYPOINT in exec (JSON) form, so signals reach node")
	}
	if len(problems) > 0 {
		fail("%s:\n  %s", path, strings.Join(problems, "\n  "))
	}
	fmt.Printf("ok %s: %d stages, final stage runs as %s\n", path, len(stages), user)
}

func isStageName(stages []instructions.Stage, name string) bool {
	for _, stage := range stages {
		if strings.EqualFold(stage.Name, name) {
			return true
		}
	}
	return false
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}
