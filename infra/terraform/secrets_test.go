package terraform_test

// API keys from a secret (secrets.tf): the applied stack names a Secrets
// Manager secret the test created; the keys themselves must be nowhere in
// what Terraform holds or prints.

import (
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/droverhq/drover/internal/awstest"
)

// createAPIKeySecret creates the Secrets Manager secret holding apiKey in
// moto, as an operator would outside Terraform, and returns its ARN.
func createAPIKeySecret(t *testing.T, moto *awstest.Moto) string {
	t.Helper()
	cmd := exec.Command("aws", "secretsmanager", "create-secret", "--name", apiKeySecretName,
		"--secret-string", `["`+apiKey+`"]`, "--query", "ARN", "--output", "text")
	cmd.Env = append(awsCLIEnv(), moto.Env()...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("create the API keys' secret: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// checkAPIKeysByReference: dispatch's environment names the secret and
// holds no key, no other function has either, and the key is in neither
// the state (file, or st: terraform show -json) nor the outputs.
func checkAPIKeysByReference(t *testing.T, tf *tfRunner, st []byte, stateFile, secretARN string) {
	outs, err := tf.output("output", "-json")
	if err != nil {
		t.Fatalf("terraform output -json: %v", err)
	}
	raw, err := os.ReadFile(stateFile)
	if err != nil {
		t.Fatalf("read the state file: %v", err)
	}
	for what, b := range map[string][]byte{"terraform show -json": st, "terraform output -json": outs, "the state file": raw} {
		if strings.Contains(string(b), apiKey) {
			t.Errorf("the API key is in %s", what)
		}
	}
	envs := map[string]map[string]any{}
	for _, fn := range functionNames {
		f := stateResource(t, st, "module."+fn+".aws_lambda_function.this")
		env := map[string]any{}
		for _, e := range list(f["environment"]) {
			if v, ok := e["variables"].(map[string]any); ok {
				env = v
			}
		}
		envs[fn] = env
		_, keys := env["DROVER_API_KEYS"]
		secret, _ := env["DROVER_API_KEYS_SECRET"].(string)
		switch {
		case keys:
			t.Errorf("%s function's environment has DROVER_API_KEYS", fn)
		case fn == "dispatch" && secret != secretARN:
			t.Errorf("dispatch function's DROVER_API_KEYS_SECRET = %q, want %q", secret, secretARN)
		case fn != "dispatch" && secret != "":
			t.Errorf("%s function's environment names the API keys' secret", fn)
		}
	}
	// Workflows on AWS: collect enqueues released steps on the tasks
	// topic dispatch sends to.
	if got, want := envs["collect"]["DROVER_TASKS_TOPIC"], envs["dispatch"]["DROVER_TASKS_TOPIC"]; got == nil || got != want {
		t.Errorf("collect's DROVER_TASKS_TOPIC = %v, want dispatch's %v: without it workflows stall at their first fan-in", got, want)
	}
}

// checkAPIKeysFromSecret: in the plan, dispatch's environment names the
// secret and holds no key, and its role may read that secret (action) and
// nothing else of its kind.
func checkAPIKeysFromSecret(t *testing.T, p plan, secretARN, action string) {
	// The environment holds queue URLs, known only after apply: the
	// applied check (checkAPIKeysByReference) reads it; here the grant.
	pol := p.change(t, "module.dispatch.module.role.aws_iam_role_policy.this")
	doc, _ := pol.Change.After["policy"].(string)
	if !strings.Contains(doc, `"`+action+`"`) || !strings.Contains(doc, `"`+secretARN+`"`) {
		t.Errorf("dispatch's policy does not grant %s on %s: %s", action, secretARN, doc)
	}
}

// bearer adds an API key to every request.
type bearer struct {
	key  string
	next http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return b.next.RoundTrip(r)
}
