package sandbox

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"strings"
	"testing"
)

// tgz returns a .tar.gz of name -> body, executable if the name is start.
func tgz(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, body := range files {
		mode := int64(0o644)
		if name == "start" {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, body)
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func TestRunHello(t *testing.T) {
	if err := Available(); err != nil {
		t.Skipf("SKIP (machine lacks what the sandbox needs): %v", err)
	}
	b := tgz(t, map[string]string{"start": "#!/bin/sh\necho hello $1; id; pwd; ls /; cat /etc/shadow; echo x > result/y\n"})
	var stdout, stderr bytes.Buffer
	out, err := Run(context.Background(), &Spec{
		Bundle: bytes.NewReader(b), BundleSize: int64(len(b)),
		Argv: []string{"world"}, Env: []string{"PATH=/usr/bin:/bin"},
		Stdout: &stdout, Stderr: &stderr,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("outcome %+v\nstdout:\n%s\nstderr:\n%s", out, stdout.String(), stderr.String())
	if !strings.Contains(stdout.String(), "hello world") {
		t.Errorf("stdout = %q", stdout.String())
	}
}
