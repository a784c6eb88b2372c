package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/droverhq/drover/internal/awstest"
	"github.com/droverhq/drover/internal/envconfig"
)

func TestParseKeys(t *testing.T) {
	k1, k2 := "key-0123456789abcdef", "key-fedcba9876543210"
	for _, tc := range []struct {
		name, value string
		want        []string
		wantErr     string
	}{
		{"one", k1, []string{k1}, ""},
		{"commas and spaces", " " + k1 + " , " + k2 + ",", []string{k1, k2}, ""},
		{"lines", k1 + "\n" + k2 + "\n", []string{k1, k2}, ""},
		{"JSON array", `["` + k1 + `", "` + k2 + `"]`, []string{k1, k2}, ""},
		{"empty", " \n", nil, "no API key"},
		{"empty array", "[]", nil, "no API key"},
		{"short key", k1 + ",short", nil, "at least 16"},
		{"JSON object", `{"key": "` + k1 + `"}`, nil, "not an array of strings"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseKeys(tc.value)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseKeys = %q, %v; want an error saying %q", got, err, tc.wantErr)
				}
				if strings.Contains(err.Error(), k1) {
					t.Fatalf("error %q shows a key", err)
				}
				return
			}
			if err != nil || strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("parseKeys = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestParseSecretRef(t *testing.T) {
	for _, tc := range []struct{ ref, service, param string }{
		{"arn:aws:secretsmanager:eu-west-1:111122223333:secret:drover/api-keys-AbCdEf", "secretsmanager", ""},
		{"arn:aws:ssm:eu-west-1:111122223333:parameter/drover/api-keys", "ssm", "/drover/api-keys"},
		{"arn:aws:ssm:eu-west-1:111122223333:parameter/api-keys", "ssm", "api-keys"},
		{"arn:aws-us-gov:ssm:us-gov-west-1:111122223333:parameter/a/b/c", "ssm", "/a/b/c"},
		{"/drover/api-keys", "", ""},
		{"drover-api-keys", "", ""},
		{"arn:aws:s3:::bucket/key", "", ""},
		{"arn:aws:secretsmanager:eu-west-1:111122223333:secret:", "", ""},
		{"arn:aws:ssm:eu-west-1:111122223333:document/x", "", ""},
	} {
		r, err := parseSecretRef(tc.ref)
		if tc.service == "" {
			if err == nil || !strings.Contains(err.Error(), "DROVER_API_KEYS_SECRET") {
				t.Errorf("%s: accepted (%v); want an error naming DROVER_API_KEYS_SECRET", tc.ref, err)
			}
			continue
		}
		if err != nil || r.service != tc.service {
			t.Errorf("%s: service %q, %v; want %s", tc.ref, r.service, err, tc.service)
			continue
		}
		if tc.param != "" && r.parameterName() != tc.param {
			t.Errorf("%s: parameter name %q, want %q", tc.ref, r.parameterName(), tc.param)
		}
	}
}

// TestAPIKeysSecret: dispatch reads its keys from a Secrets Manager
// secret or an SSM SecureString parameter (on moto) at start, takes up a
// key added by a rotation at the first request that carries it, and stops
// accepting a removed key once the keys are older than the refresh
// interval. A secret it cannot read stops it at start, naming the
// variable.
func TestAPIKeysSecret(t *testing.T) {
	if testing.Short() {
		t.Skip("starts moto_server")
	}
	moto, err := awstest.Start()
	if awstest.OptedOut(err) {
		t.Skipf("%s=1 and no moto_server", awstest.SkipEnv)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(moto.Stop)
	for _, kv := range moto.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sm, ps := secretsmanager.NewFromConfig(cfg), ssm.NewFromConfig(cfg)

	oldKey, newKey := "old-key-0123456789abcdef", "new-key-0123456789abcdef"
	type store struct {
		name   string
		create func(t *testing.T, value string) string // returns the ARN
		update func(t *testing.T, arn, value string)
	}
	stores := []store{
		{
			name: "secretsmanager",
			create: func(t *testing.T, value string) string {
				out, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("drover/test/api-keys"), SecretString: aws.String(value)})
				if err != nil {
					t.Fatal(err)
				}
				return aws.ToString(out.ARN)
			},
			update: func(t *testing.T, arn, value string) {
				if _, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(arn), SecretString: aws.String(value)}); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "ssm",
			create: func(t *testing.T, value string) string {
				name := "/drover/test/api-keys"
				if _, err := ps.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(name), Type: "SecureString", Value: aws.String(value)}); err != nil {
					t.Fatal(err)
				}
				return "arn:aws:ssm:" + awstest.Region + ":" + awstest.AccountID + ":parameter" + name
			},
			update: func(t *testing.T, arn, value string) {
				if _, err := ps.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/drover/test/api-keys"), Type: "SecureString", Value: aws.String(value), Overwrite: aws.Bool(true)}); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			arn := st.create(t, oldKey)
			t.Setenv("DROVER_TASKS_TOPIC", "memq://apikeys-"+st.name)
			t.Setenv("DROVER_BUCKET", "mem://")
			t.Setenv("DROVER_STATUS", "mem://apikeys-"+st.name+"/id")
			t.Setenv("DROVER_ADDR", "0.0.0.0:8080")
			t.Setenv("DROVER_API_KEYS", "")
			t.Setenv("DROVER_API_KEYS_SECRET", arn)
			t.Setenv("DROVER_API_KEYS_REFRESH", "1h")
			var e Env
			if err := envconfig.Parse(&e); err != nil {
				t.Fatal(err)
			}
			if err := e.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			srv, res, err := e.Open(ctx, nil)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer res.Close(nil)

			status := func(key string) int {
				req := httptest.NewRequest(http.MethodGet, "/v1/runners", nil)
				if key != "" {
					req.Header.Set("Authorization", "Bearer "+key)
				}
				w := httptest.NewRecorder()
				srv.ServeHTTP(w, req)
				return w.Code
			}
			for key, want := range map[string]int{oldKey: 200, newKey: 401, "": 401} {
				if got := status(key); got != want {
					t.Errorf("before rotation: key %q: %d, want %d", key, got, want)
				}
			}

			// Rotation, step 1: the new key joins the old one. A request
			// with it reloads at once (no wait for the refresh interval),
			// unless a miss reloaded within the last 30s, as the probe
			// of newKey above did: let that be long ago.
			st.update(t, arn, oldKey+","+newKey)
			srv.keys.mu.Lock()
			srv.keys.missAt = time.Now().Add(-time.Minute)
			srv.keys.mu.Unlock()
			if got := status(newKey); got != 200 {
				t.Errorf("a key added to the secret: %d, want 200 at its first request", got)
			}
			// A miss reloads at most every 30s: a flood of bad keys does
			// not read the secret for each request.
			st.update(t, arn, oldKey+","+newKey+",third-key-0123456789")
			if got := status("third-key-0123456789"); got != 401 {
				t.Errorf("a second miss within 30s reloaded the secret: %d, want 401", got)
			}

			// Step 2: the old key is removed. Once the keys are older
			// than the refresh interval, a request starts a reload in the
			// background; soon after the old key is refused.
			st.update(t, arn, newKey)
			srv.keys.mu.Lock()
			srv.keys.refresh, srv.keys.loadedAt = time.Millisecond, time.Now().Add(-time.Hour)
			srv.keys.mu.Unlock()
			deadline := time.Now().Add(time.Minute)
			for status(newKey) == 200 && status(oldKey) == 200 {
				if time.Now().After(deadline) {
					t.Fatal("the removed key was still accepted a minute after the refresh interval")
				}
				time.Sleep(10 * time.Millisecond)
			}
			if got := status(newKey); got != 200 {
				t.Errorf("after the refresh: the new key: %d, want 200", got)
			}
			if got := status(oldKey); got != 401 {
				t.Errorf("after the refresh: the removed key: %d, want 401", got)
			}

			// A failed reload keeps the keys loaded last.
			st.update(t, arn, "short")
			srv.keys.mu.Lock()
			srv.keys.loadedAt = time.Now().Add(-time.Hour)
			srv.keys.mu.Unlock()
			time.Sleep(50 * time.Millisecond)
			for range 3 {
				if got := status(newKey); got != 200 {
					t.Fatalf("a secret changed to a bad value: the last good key got %d, want 200", got)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}

	t.Run("unreadable secret stops the start", func(t *testing.T) {
		t.Setenv("DROVER_TASKS_TOPIC", "memq://apikeys-missing")
		t.Setenv("DROVER_BUCKET", "mem://")
		t.Setenv("DROVER_STATUS", "mem://apikeys-missing/id")
		t.Setenv("DROVER_ADDR", "0.0.0.0:8080")
		t.Setenv("DROVER_API_KEYS", "")
		for _, ref := range []string{
			"arn:aws:secretsmanager:" + awstest.Region + ":" + awstest.AccountID + ":secret:drover/missing-AbCdEf",
			"arn:aws:ssm:" + awstest.Region + ":" + awstest.AccountID + ":parameter/drover/missing",
		} {
			t.Setenv("DROVER_API_KEYS_SECRET", ref)
			var e Env
			if err := envconfig.Parse(&e); err != nil {
				t.Fatal(err)
			}
			if err := e.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			_, res, err := e.Open(ctx, nil)
			if err == nil {
				res.Close(nil)
				t.Fatalf("%s: dispatch started without its keys", ref)
			}
			if !strings.HasPrefix(err.Error(), "DROVER_API_KEYS_SECRET: ") || strings.Contains(err.Error(), "\n") {
				t.Errorf("%s: error %q; want one line naming DROVER_API_KEYS_SECRET", ref, err)
			}
		}
	})
}
