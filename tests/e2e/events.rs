//! Reading a run's `--log-format json` events: which compensations ran, in what order.

use serde_json::Value;

/// Indices of the events that start and finish each step's compensation, in start order.
fn compensations(events: &[Value]) -> Vec<(String, usize, Option<usize>)> {
    let mut found: Vec<(String, usize, Option<usize>)> = Vec::new();
    for (index, event) in events.iter().enumerate() {
        if event["phase"] != "compensation" {
            continue;
        }
        let step = event["step"].as_str().unwrap_or_default().to_string();
        match event["event"].as_str() {
            Some("step_started") => found.push((step, index, None)),
            Some("step_finished") => {
                if let Some(entry) = found.iter_mut().find(|entry| entry.0 == step) {
                    entry.2 = Some(index);
                }
            }
            _ => {}
        }
    }
    found
}

/// Asserts that exactly the steps of `groups` were compensated, each group only after every
/// compensation of the group before it finished (members of a group may run in parallel).
pub fn assert_compensation_order(events: &[Value], groups: &[&[&str]]) {
    let found = compensations(events);
    let mut expected: Vec<&str> = groups
        .iter()
        .flat_map(|group| group.iter().copied())
        .collect();
    let mut actual: Vec<&str> = found.iter().map(|(step, _, _)| step.as_str()).collect();
    let order = actual.join(", ");
    expected.sort_unstable();
    actual.sort_unstable();
    assert_eq!(actual, expected, "compensated, in order: {order}");
    let entry = |step: &str| {
        found
            .iter()
            .find(|entry| entry.0 == step)
            .expect("compensated")
    };
    for pair in groups.windows(2) {
        for earlier in pair[0] {
            let finished = entry(earlier)
                .2
                .unwrap_or_else(|| panic!("the compensation of `{earlier}` never finished"));
            for later in pair[1] {
                assert!(
                    finished < entry(later).1,
                    "the compensation of `{later}` started before that of `{earlier}` finished; \
                     order: {order}"
                );
            }
        }
    }
    for (step, _, _) in &found {
        let status = events
            .iter()
            .find(|event| {
                event["event"] == "step_finished"
                    && event["phase"] == "compensation"
                    && event["step"] == step.as_str()
            })
            .map(|event| event["status"].clone());
        assert_eq!(
            status,
            Some(Value::from("compensated")),
            "the compensation of `{step}`"
        );
    }
}

/// Whether any event concerns `step`.
pub fn mentions_step(events: &[Value], step: &str) -> bool {
    events.iter().any(|event| event["step"] == step)
}

/// The run id from the `run_started` event.
pub fn run_id(events: &[Value]) -> String {
    events
        .iter()
        .find(|event| event["event"] == "run_started")
        .and_then(|event| event["run_id"].as_str())
        .expect("a run_started event with a run id")
        .to_string()
}
