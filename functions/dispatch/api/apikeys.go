package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// API keys: fixed (DROVER_API_KEYS), or read from a secret
// (DROVER_API_KEYS_SECRET, a Secrets Manager secret or an SSM parameter)
// at start and again while the process runs, so that a rotation reaches
// running processes without a restart and no key sits in the environment
// or in Terraform state.

// minKeyLen is the shortest API key accepted.
const minKeyLen = 16

// KeyLoader returns the accepted API keys, e.g. read from a secret.
type KeyLoader func(ctx context.Context) ([]string, error)

// apiKeys holds the accepted bearer tokens as SHA-256 sums, compared in
// constant time (equal lengths) against the token's. With a loader it
// reloads them once they are older than refresh, in the background of the
// request that finds them stale; and for a token that matches none (a key
// just added by a rotation) at once, but at most every missReload, so
// that bad tokens cannot hammer the secret store. A failed load keeps the
// keys loaded last.
type apiKeys struct {
	hashes     atomic.Pointer[[][sha256.Size]byte]
	load       KeyLoader
	refresh    time.Duration
	missReload time.Duration
	log        *slog.Logger

	loadMu   sync.Mutex // one load at a time
	mu       sync.Mutex
	loadedAt time.Time // when the last load began
	missAt   time.Time // when the last load for a missed token began
	loading  bool
}

func newAPIKeys(keys []string, load KeyLoader, refresh time.Duration, log *slog.Logger) *apiKeys {
	k := &apiKeys{load: load, refresh: refresh, missReload: 30 * time.Second, log: log, loadedAt: time.Now()}
	k.set(keys)
	return k
}

func (k *apiKeys) set(keys []string) {
	sums := make([][sha256.Size]byte, 0, len(keys))
	for _, key := range keys {
		sums = append(sums, sha256.Sum256([]byte(key)))
	}
	k.hashes.Store(&sums)
}

// enabled reports whether requests need a key at all.
func (k *apiKeys) enabled() bool { return k.load != nil || len(*k.hashes.Load()) > 0 }

// match compares sum with every key, so that neither which key matched
// nor its length shows in the time taken.
func (k *apiKeys) match(sum [sha256.Size]byte) bool {
	m := 0
	for _, h := range *k.hashes.Load() {
		m |= subtle.ConstantTimeCompare(sum[:], h[:])
	}
	return m == 1
}

// valid reports whether token is one of the keys, reloading them as
// described on apiKeys.
func (k *apiKeys) valid(ctx context.Context, token string) bool {
	sum := sha256.Sum256([]byte(token))
	if k.match(sum) {
		k.refreshIfStale()
		return true
	}
	if k.load == nil {
		return false
	}
	k.mu.Lock()
	now := time.Now()
	if now.Sub(k.missAt) < k.missReload {
		k.mu.Unlock()
		return false
	}
	k.missAt, k.loadedAt = now, now
	k.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	k.reload(ctx)
	return k.match(sum)
}

// refreshIfStale starts a background reload once the keys are older than
// refresh (0: never).
func (k *apiKeys) refreshIfStale() {
	if k.load == nil || k.refresh <= 0 {
		return
	}
	k.mu.Lock()
	if k.loading || time.Since(k.loadedAt) < k.refresh {
		k.mu.Unlock()
		return
	}
	k.loading, k.loadedAt = true, time.Now()
	k.mu.Unlock()
	go func() {
		defer func() { k.mu.Lock(); k.loading = false; k.mu.Unlock() }()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		k.reload(ctx)
	}()
}

func (k *apiKeys) reload(ctx context.Context) {
	k.loadMu.Lock()
	defer k.loadMu.Unlock()
	keys, err := k.load(ctx)
	if err == nil {
		keys, err = checkKeys(keys)
	}
	if err != nil {
		if k.log != nil {
			k.log.Warn("reload API keys; keeping the keys loaded last", "err", err)
		}
		return
	}
	k.set(keys)
}

// checkKeys trims keys, drops empty ones, and refuses an empty set or a
// key shorter than minKeyLen.
func checkKeys(keys []string) ([]string, error) {
	out := make([]string, 0, len(keys))
	for _, key := range keys {
		if key = strings.TrimSpace(key); key != "" {
			out = append(out, key)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no API key in it")
	}
	for _, key := range out {
		if len(key) < minKeyLen {
			return nil, fmt.Errorf("every key must be at least %d characters", minKeyLen)
		}
	}
	return out, nil
}

// parseKeys reads a secret's value: a JSON array of strings, or keys
// separated by commas, spaces or newlines.
func parseKeys(value string) ([]string, error) {
	value = strings.TrimSpace(value)
	if strings.HasPrefix(value, "[") || strings.HasPrefix(value, "{") {
		var keys []string
		if err := json.Unmarshal([]byte(value), &keys); err != nil {
			return nil, errors.New("its value is JSON but not an array of strings")
		}
		return checkKeys(keys)
	}
	return checkKeys(strings.FieldsFunc(value, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t'
	}))
}

// secretRef is a parsed DROVER_API_KEYS_SECRET: the ARN of a Secrets
// Manager secret or of an SSM parameter.
type secretRef struct {
	arn     arn.ARN
	service string // "secretsmanager" or "ssm"
}

func parseSecretRef(s string) (secretRef, error) {
	a, err := arn.Parse(s)
	if err == nil {
		switch {
		case a.Service == "secretsmanager" && strings.HasPrefix(a.Resource, "secret:") && len(a.Resource) > len("secret:"):
			return secretRef{arn: a, service: a.Service}, nil
		case a.Service == "ssm" && strings.HasPrefix(a.Resource, "parameter/") && len(a.Resource) > len("parameter/"):
			return secretRef{arn: a, service: a.Service}, nil
		}
	}
	return secretRef{}, fmt.Errorf("DROVER_API_KEYS_SECRET=%s must be the ARN of a Secrets Manager secret (arn:aws:secretsmanager:<region>:<account>:secret:<name>) or of an SSM parameter (arn:aws:ssm:<region>:<account>:parameter/<name>)", s)
}

// parameterName is an SSM parameter's name from its ARN: "parameter/a/b"
// names "/a/b" (a path), "parameter/a" names "a".
func (r secretRef) parameterName() string {
	rest := strings.TrimPrefix(r.arn.Resource, "parameter")
	if strings.Count(rest, "/") == 1 {
		return rest[1:]
	}
	return rest
}

// secretLoader returns a KeyLoader reading the keys from ref with the AWS
// SDK's default configuration (AWS_ENDPOINT_URL, credentials), in the
// ARN's region.
func secretLoader(ctx context.Context, ref secretRef) (KeyLoader, error) {
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(ref.arn.Region))
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	id := ref.arn.String()
	switch ref.service {
	case "ssm":
		c := ssm.NewFromConfig(cfg)
		name := ref.parameterName()
		return func(ctx context.Context) ([]string, error) {
			out, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
			if err != nil {
				return nil, fmt.Errorf("read SSM parameter %s: %w", id, err)
			}
			keys, err := parseKeys(aws.ToString(out.Parameter.Value))
			if err != nil {
				return nil, fmt.Errorf("SSM parameter %s: %w", id, err)
			}
			return keys, nil
		}, nil
	default:
		c := secretsmanager.NewFromConfig(cfg)
		return func(ctx context.Context) ([]string, error) {
			out, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
			if err != nil {
				return nil, fmt.Errorf("read secret %s: %w", id, err)
			}
			value := aws.ToString(out.SecretString)
			if out.SecretString == nil {
				value = string(out.SecretBinary)
			}
			keys, err := parseKeys(value)
			if err != nil {
				return nil, fmt.Errorf("secret %s: %w", id, err)
			}
			return keys, nil
		}, nil
	}
}
