package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authz/authz/clientauth"
	"github.com/authz/authz/dpop"
	"github.com/authz/authz/reliability"
)

var ccForm = url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}}.Encode()

// scenario is one kind of traffic; weight is its share of the mix.
type scenario struct {
	name   string
	weight int
	run    func(w *worker)
}

// scenarios is the traffic mix: good ABCA-09 §5 requests and the hostile ones issue 7 names.
var scenarios = []scenario{
	{"good", 40, (*worker).good},
	{"replay", 12, (*worker).replay},
	{"concurrent_replay", 5, (*worker).concurrentReplay},
	{"dpop_replay", 4, (*worker).dpopReplay},
	{"bad_signature", 10, (*worker).badSignature},
	{"wrong_audience", 8, (*worker).wrongAudience},
	{"forged_attestation", 5, (*worker).forgedAttestation},
	{"oversized_header", 4, (*worker).oversizedHeader},
	{"garbage_form", 10, (*worker).garbageForm},
	{"garbage_jwt", 6, (*worker).garbageJWT},
}

// replayRing keeps recently accepted header sets to replay (ABCA-09 §11.1).
type replayRing struct {
	mu   sync.Mutex
	sets []map[string]string
	next int
}

const replayRingSize = 512

func (r *replayRing) add(h map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.sets) < replayRingSize {
		r.sets = append(r.sets, h)
		return
	}
	r.sets[r.next] = h
	r.next = (r.next + 1) % replayRingSize
}

func (r *replayRing) pick() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.sets) == 0 {
		return nil
	}
	return r.sets[randInt(len(r.sets))]
}

// worker is one client goroutine: an attested instance of the agent client.
type worker struct {
	env    *env
	st     *stats
	ring   *replayRing
	client *http.Client
	agent  *reliability.Agent
	other  *ecdsa.PrivateKey // signs PoPs that do not match cnf
}

// drive runs the workers and the RSS sampler for o.duration.
func drive(ctx context.Context, e *env, proc *reliability.Process, o *options) (*stats, error) {
	st := newStats()
	ring := &replayRing{}
	transport := &http.Transport{MaxIdleConnsPerHost: o.workers * 2}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}

	workers := make([]*worker, o.workers)
	for i := range workers {
		inst, err := reliability.NewKey()
		if err != nil {
			return nil, err
		}
		other, err := reliability.NewKey()
		if err != nil {
			return nil, err
		}
		att, err := e.attester.Attestation(agentID, inst, time.Now(), e.attTTL)
		if err != nil {
			return nil, err
		}
		workers[i] = &worker{env: e, st: st, ring: ring, client: client, other: other,
			agent: &reliability.Agent{ClientID: agentID, Issuer: e.issuer, Instance: inst, Attestation: att}}
	}

	runCtx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sampleRSS(runCtx, proc, st)
	}()
	total := 0
	for _, s := range scenarios {
		total += s.weight
	}
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for runCtx.Err() == nil {
				n := randInt(total)
				for _, s := range scenarios {
					if n < s.weight {
						s.run(w)
						break
					}
					n -= s.weight
				}
			}
		}()
	}
	wg.Wait()
	if rss, err := proc.AnonRSS(); err == nil {
		st.sample(rss)
	}
	return st, nil
}

// sampleRSS records the server's anonymous RSS (heap, stacks; not the SQLite memory map) once a second.
func sampleRSS(ctx context.Context, proc *reliability.Process, st *stats) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if rss, err := proc.AnonRSS(); err == nil {
			st.sample(rss)
		} else {
			st.violate("reading the server's anonymous RSS: %v", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// post sends one token request and records the answer under scenario name. Any 5xx and any
// transport failure is a violation (the soak injects no faults).
func (w *worker) post(name, contentType string, body []byte, headers map[string]string) *reliability.Response {
	req, err := http.NewRequest(http.MethodPost, w.env.issuer+"/oauth2/token", bytes.NewReader(body))
	if err != nil {
		w.st.violate("%s: building the request: %v", name, err)
		return nil
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	r, err := reliability.Do(w.client, req)
	if err != nil {
		w.st.transportError(name, err)
		return nil
	}
	_, attested := headers[clientauth.HeaderClientAttestation]
	w.st.answer(name, r.Status, attested)
	if r.Status >= 500 {
		w.st.violate("%s: %d %s", name, r.Status, truncate(string(r.Body), 300))
	}
	return r
}

func (w *worker) postForm(name string, headers map[string]string) *reliability.Response {
	return w.post(name, "application/x-www-form-urlencoded", []byte(ccForm), headers)
}

// expectRefused records a violation when a hostile request got a token.
func (w *worker) expectRefused(name string, r *reliability.Response) {
	if r != nil && r.Status == http.StatusOK {
		w.st.violate("%s: hostile request accepted (token issued)", name)
		w.st.token(r.AccessToken) // it exists; count it so the database check stays exact
	}
}

func (w *worker) headers() map[string]string {
	h, _, err := w.agent.Headers("", time.Now())
	if err != nil {
		w.st.violate("signing: %v", err)
		return nil
	}
	return h
}

// good is a valid ABCA-09 §5 request: attestation and a fresh PoP. It must get a token.
func (w *worker) good() {
	h := w.headers()
	if h == nil {
		return
	}
	r := w.postForm("good", h)
	if r == nil {
		return
	}
	if r.Status != http.StatusOK || r.AccessToken == "" {
		w.st.violate("good: refused: %d %s %s", r.Status, r.Error, r.Description)
		return
	}
	w.st.token(r.AccessToken)
	w.ring.add(h)
}

// replay resends an accepted PoP (ABCA-09 §11.1): it must never be accepted again.
func (w *worker) replay() {
	h := w.ring.pick()
	if h == nil {
		w.good()
		return
	}
	r := w.postForm("replay", h)
	w.st.replayTried(r != nil && r.Status == http.StatusOK)
	w.expectRefused("replay", r)
}

// concurrentReplay sends one fresh PoP twice at once: exactly one may win (profile §5: one
// atomic insert on a unique key).
func (w *worker) concurrentReplay() {
	h := w.headers()
	if h == nil {
		return
	}
	var wg sync.WaitGroup
	res := make([]*reliability.Response, 2)
	for i := range res {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = w.postForm("concurrent_replay", h)
		}()
	}
	wg.Wait()
	wins := 0
	for _, r := range res {
		if r != nil && r.Status == http.StatusOK {
			wins++
			w.st.token(r.AccessToken)
		}
	}
	w.st.replayTried(wins > 1)
	switch {
	case wins > 1:
		w.st.violate("concurrent_replay: one PoP accepted %d times", wins)
	case wins == 0 && res[0] != nil && res[1] != nil:
		w.st.violate("concurrent_replay: neither copy of a fresh PoP was accepted (%d, %d)", res[0].Status, res[1].Status)
	}
}

// dpopReplay obtains a DPoP-bound token (RFC 9449 §5) and then presents the same DPoP proof with
// a fresh attestation PoP: the proof's jti is spent (RFC 9449 §11.1, profile §5).
func (w *worker) dpopReplay() {
	proof, err := reliability.Sign(w.other, "dpop+jwt", map[jose.HeaderKey]any{"jwk": jose.JSONWebKey{Key: w.other.Public()}}, map[string]any{
		"jti": randomID(), "htm": http.MethodPost, "htu": w.env.issuer + "/oauth2/token", "iat": time.Now().Unix(),
	})
	if err != nil {
		w.st.violate("signing: %v", err)
		return
	}
	h := w.headers()
	if h == nil {
		return
	}
	h[dpop.Header] = proof
	r := w.postForm("dpop_replay", h)
	if r == nil {
		return
	}
	if r.Status != http.StatusOK || !strings.EqualFold(r.TokenType, "DPoP") {
		w.st.violate("dpop_replay: first use refused or not DPoP-bound: %d %s %s (token_type %q)", r.Status, r.Error, r.Description, r.TokenType)
		if r.Status == http.StatusOK {
			w.st.token(r.AccessToken)
		}
		return
	}
	w.st.token(r.AccessToken)
	h2 := w.headers()
	if h2 == nil {
		return
	}
	h2[dpop.Header] = proof
	r = w.postForm("dpop_replay", h2)
	w.st.replayTried(r != nil && r.Status == http.StatusOK)
	w.expectRefused("dpop_replay", r)
}

func randomID() string {
	id, err := reliability.RandomString()
	if err != nil {
		return "x"
	}
	return id
}

// badSignature sends a PoP signed by a key other than cnf.jwk (ABCA-09 §7.2).
func (w *worker) badSignature() {
	pop, _, err := reliability.PoP(w.other, w.env.issuer, "", time.Now())
	if err != nil {
		return
	}
	w.expectRefused("bad_signature", w.postForm("bad_signature", map[string]string{
		clientauth.HeaderClientAttestation: w.agent.Attestation, clientauth.HeaderClientAttestationPoP: pop,
	}))
}

// wrongAudience sends a PoP for another issuer (ABCA-09 §7.2, profile §3).
func (w *worker) wrongAudience() {
	pop, _, err := reliability.PoP(w.agent.Instance, "https://evil.example", "", time.Now())
	if err != nil {
		return
	}
	w.expectRefused("wrong_audience", w.postForm("wrong_audience", map[string]string{
		clientauth.HeaderClientAttestation: w.agent.Attestation, clientauth.HeaderClientAttestationPoP: pop,
	}))
}

// forgedAttestation sends an attestation signed by an untrusted key under the trusted kid.
func (w *worker) forgedAttestation() {
	att, err := w.env.forger.Attestation(agentID, w.agent.Instance, time.Now(), time.Hour)
	if err != nil {
		return
	}
	pop, _, err := reliability.PoP(w.agent.Instance, w.env.issuer, "", time.Now())
	if err != nil {
		return
	}
	w.expectRefused("forged_attestation", w.postForm("forged_attestation", map[string]string{
		clientauth.HeaderClientAttestation: att, clientauth.HeaderClientAttestationPoP: pop,
	}))
}

// oversizedHeader sends a 20 KiB attestation header (profile §3: at most 16 KiB, else 400).
func (w *worker) oversizedHeader() {
	h := w.headers()
	if h == nil {
		return
	}
	h[clientauth.HeaderClientAttestation] = strings.Repeat("A", 20<<10)
	r := w.postForm("oversized_header", h)
	w.expectRefused("oversized_header", r)
	if r != nil && r.Status != http.StatusBadRequest {
		w.st.violate("oversized_header: %d %s, want 400 invalid_request", r.Status, r.Error)
	}
}

// garbageForm posts random bytes as a form.
func (w *worker) garbageForm() {
	body := make([]byte, randInt(2048))
	_, _ = rand.Read(body)
	w.expectRefused("garbage_form", w.post("garbage_form", "application/x-www-form-urlencoded", body, nil))
}

// garbageJWT sends three-part junk in both attestation headers.
func (w *worker) garbageJWT() {
	junk := func() string {
		parts := make([]string, 3)
		for i := range parts {
			b := make([]byte, 1+randInt(300))
			_, _ = rand.Read(b)
			parts[i] = base64.RawURLEncoding.EncodeToString(b)
		}
		return strings.Join(parts, ".")
	}
	w.expectRefused("garbage_jwt", w.postForm("garbage_jwt", map[string]string{
		clientauth.HeaderClientAttestation: junk(), clientauth.HeaderClientAttestationPoP: junk(),
	}))
}

func randInt(n int) int {
	if n <= 1 {
		return 0
	}
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		return 0
	}
	return int(v.Int64())
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("... (%d bytes)", len(s))
}
