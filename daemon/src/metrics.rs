//! Prometheus metrics (text format at GET /metrics).

use prometheus::{
    CounterVec, Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub latency: HistogramVec,
    pub signs: IntCounterVec,
    pub denials: IntCounterVec,
    pub sessions_in_use: IntGaugeVec,
    pub sessions_max: IntGaugeVec,
    pub token_ready: IntGaugeVec,
    pub device_status: IntGaugeVec,
    pub tsa_requests: IntCounterVec,
    pub tsa_waited: CounterVec,
    pub tsa_resting: IntGaugeVec,
    /// One scrape at a time brings the TSA counters up to the timestamper's.
    pub tsa_sync: std::sync::Arc<std::sync::Mutex<()>>,
    pub queue_depth: IntGauge,
    pub queue_capacity: IntGauge,
    pub audit_head: IntGauge,
}

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "seald_http_requests_total",
                "HTTP requests by endpoint and status",
            ),
            &["endpoint", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "seald_http_request_duration_seconds",
                "HTTP request latency by endpoint and status",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["endpoint", "status"],
        )?;
        let signs = IntCounterVec::new(
            Opts::new(
                "seald_sign_total",
                "Sign attempts by seal and outcome (signed, denied, failed)",
            ),
            &["seal", "outcome"],
        )?;
        let denials = IntCounterVec::new(
            Opts::new(
                "seald_policy_denials_total",
                "Requests refused, by reason code",
            ),
            &["code"],
        )?;
        let sessions_in_use = IntGaugeVec::new(
            Opts::new("seald_token_sessions_in_use", "Token sessions signing now"),
            &["token"],
        )?;
        let sessions_max = IntGaugeVec::new(
            Opts::new("seald_token_sessions_max", "Token sessions configured"),
            &["token"],
        )?;
        let token_ready = IntGaugeVec::new(
            Opts::new("seald_token_ready", "1 if the token is logged in and ready"),
            &["token"],
        )?;
        let device_status = IntGaugeVec::new(
            Opts::new(
                "seald_device_status",
                "1 for a serial signing device's current status (ready, busy, waiting_for_touch, absent), 0 for the others",
            ),
            &["device", "status"],
        )?;
        let tsa_requests = IntCounterVec::new(
            Opts::new(
                "seald_tsa_requests_total",
                "Time-stamp requests by TSA and outcome (answered, failed)",
            ),
            &["tsa", "outcome"],
        )?;
        let tsa_waited = CounterVec::new(
            Opts::new(
                "seald_tsa_budget_wait_seconds_total",
                "Seconds time-stamp requests waited for room in a TSA's rate budget",
            ),
            &["tsa"],
        )?;
        let tsa_resting = IntGaugeVec::new(
            Opts::new(
                "seald_tsa_resting",
                "1 while a TSA that failed is asked only after the others",
            ),
            &["tsa"],
        )?;
        let queue_depth = IntGauge::new(
            "seald_sign_queue_depth",
            "Sign requests admitted and not finished",
        )?;
        let queue_capacity = IntGauge::new(
            "seald_sign_queue_capacity",
            "Sign requests admitted at most (limits.queue_depth)",
        )?;
        let audit_head = IntGauge::new(
            "seald_audit_head_seq",
            "Sequence number of the newest audit record",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(signs.clone()))?;
        registry.register(Box::new(denials.clone()))?;
        registry.register(Box::new(sessions_in_use.clone()))?;
        registry.register(Box::new(sessions_max.clone()))?;
        registry.register(Box::new(token_ready.clone()))?;
        registry.register(Box::new(device_status.clone()))?;
        registry.register(Box::new(tsa_requests.clone()))?;
        registry.register(Box::new(tsa_waited.clone()))?;
        registry.register(Box::new(tsa_resting.clone()))?;
        registry.register(Box::new(queue_depth.clone()))?;
        registry.register(Box::new(queue_capacity.clone()))?;
        registry.register(Box::new(audit_head.clone()))?;
        Ok(Metrics {
            registry,
            requests,
            latency,
            signs,
            denials,
            sessions_in_use,
            sessions_max,
            token_ready,
            device_status,
            tsa_requests,
            tsa_waited,
            tsa_resting,
            tsa_sync: Default::default(),
            queue_depth,
            queue_capacity,
            audit_head,
        })
    }

    /// Counts a refusal by its reason code.
    pub fn denied(&self, code: &str) {
        self.denials.with_label_values(&[code]).inc();
    }

    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}
