// A registry that serves the OCI 1.1 referrers API, for the lab's tests of what the mirror does with one:
// distribution 2.8 and 3.x answer GET /v2/<name>/referrers/<digest> with 404. It is go-containerregistry's
// registry package (manifests in memory, blobs on disk) behind TLS and one Basic-auth account, as the lab's
// internal registry has them. Tests start it on a port of their own and stop it afterwards.
package main

import (
	"crypto/subtle"
	"flag"
	"io"
	"log"
	"net/http"
	"os"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:5111", "address to listen on")
	cert := flag.String("tls-cert", "", "TLS certificate (PEM)")
	key := flag.String("tls-key", "", "TLS private key (PEM)")
	blobs := flag.String("blobs", "", "directory that keeps the blobs")
	user := flag.String("user", "", "the one account (its password in $REGISTRY_PASSWORD); empty: no auth")
	flag.Parse()
	if *cert == "" || *key == "" || *blobs == "" {
		log.Fatal("-tls-cert, -tls-key and -blobs are required")
	}
	quiet := log.New(io.Discard, "", 0)
	var handler http.Handler = registry.New(
		registry.WithReferrersSupport(true),
		registry.WithBlobHandler(registry.NewDiskBlobHandler(*blobs)),
		registry.Logger(quiet),
	)
	if *user != "" {
		handler = basicAuth(handler, *user, os.Getenv("REGISTRY_PASSWORD"))
	}
	server := &http.Server{Addr: *addr, Handler: handler, ErrorLog: quiet}
	log.Fatal(server.ListenAndServeTLS(*cert, *key))
}

func basicAuth(next http.Handler, user, password string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 ||
			subtle.ConstantTimeCompare([]byte(p), []byte(password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="lab-referrers"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
