//! Spreading over several Flume agents from the facade: routing by key keeps each
//! record's changes on one agent, in capture order.

use std::collections::BTreeMap;

use headwater::{ChangeData, Headwater};
use headwater_mock_flume::{MockConfig, MockFlume};

#[tokio::test]
async fn routing_by_key_keeps_each_records_changes_on_one_agent_in_order() {
    let agents = [
        MockFlume::start(MockConfig::default()).await.unwrap(),
        MockFlume::start(MockConfig::default()).await.unwrap(),
        MockFlume::start(MockConfig::default()).await.unwrap(),
    ];
    let headwater = Headwater::builder()
        .flume(agents.iter().map(|agent| agent.url().to_owned()))
        .route_by_key()
        .batch_size(7)
        .start()
        .unwrap();
    let changes = (0..300)
        .map(|n| ChangeData::update("todos", format!("todo-{}", n % 12), &n).unwrap())
        .collect();
    headwater.capture_all(changes).await.unwrap();
    headwater.flush().await.unwrap();
    headwater.shutdown().await;

    let mut agent_of: BTreeMap<String, usize> = BTreeMap::new();
    for (index, agent) in agents.iter().enumerate() {
        let mut last: BTreeMap<String, u64> = BTreeMap::new();
        for event in agent.events() {
            let key = event.headers["key"].clone();
            let seq: u64 = event.headers["seq"].parse().unwrap();
            assert_eq!(
                *agent_of.entry(key.clone()).or_insert(index),
                index,
                "{key} reached two agents"
            );
            if let Some(previous) = last.insert(key.clone(), seq) {
                assert!(previous < seq, "{key}: {seq} after {previous}");
            }
        }
    }
    assert_eq!(agent_of.len(), 12);
    let used = agent_of
        .values()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    assert!(used >= 2, "records spread over the agents: {agent_of:?}");
    let delivered: usize = agents.iter().map(MockFlume::event_count).sum();
    assert_eq!(delivered, 300);
}
