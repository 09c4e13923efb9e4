package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/authz/authz/config"
	"github.com/authz/authz/storage"
)

// metrics are authz's Prometheus series, on a registry of their own (one per Server, so tests
// can run several servers in one process).
type metrics struct {
	registry  *prometheus.Registry
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	tokens    *prometheus.CounterVec
	decisions *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authz_http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "authz_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "method"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authz_token_requests_total", Help: "Token endpoint outcomes by grant type and client authentication method.",
		}, []string{"grant_type", "auth_method", "result"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authz_attestation_decisions_total", Help: "Attestation audit decisions by decision and reason.",
		}, []string{"decision", "reason"}),
	}
	m.registry.MustRegister(m.requests, m.latency, m.tokens, m.decisions,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// grantCollector exports the group writer's counters (storage.Store.GrantStats).
func grantCollector(store *storage.Store) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "authz_grant_transactions_total", Help: "Group transactions that committed token grants (replay keys, token rows, decisions).",
		}, func() float64 { b, _ := store.GrantStats(); return float64(b) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "authz_grants_total", Help: "Token grants written by the group writer; divided by authz_grant_transactions_total it is the mean batch size.",
		}, func() float64 { _, g := store.GrantStats(); return float64(g) }),
	}
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// request observes one HTTP request. The method label is bounded to the methods of RFC 9110 §9
// and PATCH: net/http accepts any token as a method, and a label per made-up method would let
// any client grow the registry (and every scrape) without limit.
func (m *metrics) request(route, method string, status int, d time.Duration) {
	if !known(httpMethods, method) {
		method = "other"
	}
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route, method).Observe(d.Seconds())
}

// token counts token-endpoint outcomes; label values are bounded to known names.
func (m *metrics) token(grant, method, result string) {
	if !known(config.GrantTypes, grant) {
		grant = "other"
	}
	if !known(config.AuthMethods, method) {
		method = "unknown"
	}
	m.tokens.WithLabelValues(grant, method, result).Inc()
}

func (m *metrics) decision(decision, reason string) {
	m.decisions.WithLabelValues(decision, reason).Inc()
}

var httpMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace}

func known(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
