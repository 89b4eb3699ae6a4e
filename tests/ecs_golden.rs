//! The example bodies of the OTC docs (tests/fixtures/ecs-api/README.md says which
//! file each comes from) parse with the wire types, and the fields the operator
//! reads come out right.

use ecs_power_operator::ecs::wire::{
    BatchAction, EcsErrorBody, GatewayErrorBody, Job, JobAccepted, JobStatus, PowerActionType,
    ServerList, ShowServer, error_code_and_message,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/ecs-api/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn batch_stop_request() {
    let action: BatchAction = serde_json::from_slice(&fixture("batch-stop-request.json")).unwrap();
    let BatchAction::Stop(stop) = &action else {
        panic!("not os-stop: {action:?}")
    };
    assert_eq!(stop.stop_type, Some(PowerActionType::Hard));
    let ids: Vec<&str> = stop.servers.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "616fb98f-46ca-475e-917e-2563e5a8cd19",
            "726fb98f-46ca-475e-917e-2563e5a8cd20"
        ]
    );
    assert_eq!(action.operation(), "os-stop");
}

#[test]
fn batch_start_request() {
    let action: BatchAction = serde_json::from_slice(&fixture("batch-start-request.json")).unwrap();
    assert!(matches!(action, BatchAction::Start(_)));
    assert_eq!(action.servers().len(), 2);
}

#[test]
fn batch_stop_response() {
    let accepted: JobAccepted =
        serde_json::from_slice(&fixture("batch-stop-response.json")).unwrap();
    assert_eq!(
        accepted.job_id.as_deref(),
        Some("ff808082889bd9690189061140c235fe")
    );
}

#[test]
fn job_with_sub_jobs() {
    let job: Job = serde_json::from_slice(&fixture("job-query-response.json")).unwrap();
    assert_eq!(job.status, JobStatus::Success);
    assert!(job.status.is_terminal());
    assert_eq!(
        job.job_id.as_deref(),
        Some("2c9eb2c5544cbf6101544f0602af2b4f")
    );
    assert_eq!(job.end_time.as_deref(), Some("2016-04-25T20:08:41.593Z"));
    assert_eq!(job.error_code, None);
    assert_eq!(job.entities.sub_jobs_total, Some(1));
    let sub_jobs = job.entities.sub_jobs.as_deref().unwrap();
    assert_eq!(sub_jobs.len(), 1);
    assert_eq!(sub_jobs[0].status, JobStatus::Success);
    assert_eq!(
        sub_jobs[0].entities.server_id.as_deref(),
        Some("bae51750-0089-41a1-9b18-5c777978ff6d")
    );
    assert_eq!(sub_jobs[0].fail_reason, None);
}

#[test]
fn list_servers_details() {
    let list: ServerList =
        serde_json::from_slice(&fixture("list-servers-details-response.json")).unwrap();
    assert_eq!(list.count, 4);
    assert_eq!(list.servers.len(), 4);
    let first = &list.servers[0];
    assert_eq!(first.id, "b37fd80e-ac67-4d02-b9f1-9891c9c0fabf");
    assert_eq!(first.status.as_deref(), Some("SHUTOFF"));
    assert_eq!(first.task_state, None);
    assert_eq!(first.power_state, Some(4));
    assert_eq!(first.locked, Some(false));
    assert_eq!(first.fault, None);
    assert_eq!(first.updated.as_deref(), Some("2018-08-14T07:26:49Z"));
    assert_eq!(
        first.metadata.as_ref().unwrap()["os_type"],
        "Linux".to_owned()
    );
    assert_eq!(first.tags.as_deref(), Some(&[][..]));
    let last = &list.servers[3];
    assert_eq!(last.id, "e3d3f219-b445-4a7a-8f00-e31412481f8c");
    assert_eq!(last.status.as_deref(), Some("ACTIVE"));
    assert_eq!(last.power_state, Some(1));
    assert_eq!(
        last.tags.as_ref().unwrap()[1],
        "_sys_root_resource_type=xxx.resource.type.vm"
    );
}

#[test]
fn show_server() {
    let show: ShowServer = serde_json::from_slice(&fixture("show-server-response.json")).unwrap();
    let server = show.server;
    assert_eq!(server.id, "4f4b3dfa-eb70-47cf-a60a-998a53bd598a");
    assert_eq!(server.name.as_deref(), Some("ecs-2ecf"));
    assert_eq!(server.status.as_deref(), Some("ACTIVE"));
    assert_eq!(server.vm_state.as_deref(), Some("active"));
    assert_eq!(server.task_state, None);
    assert_eq!(server.power_state, Some(1));
    assert_eq!(server.locked, Some(false));
    assert_eq!(server.availability_zone.as_deref(), Some("az1-dc1"));
    assert_eq!(
        server.tenant_id.as_deref(),
        Some("ff2eb406effc455aba53174463eb9322")
    );
    assert_eq!(server.updated.as_deref(), Some("2018-09-13T07:06:51Z"));
}

#[test]
fn ecs_error_body() {
    let body = fixture("error-batch-request.json");
    let parsed: EcsErrorBody = serde_json::from_slice(&body).unwrap();
    assert_eq!(parsed.error.code, "Ecs.xxxx");
    assert_eq!(
        error_code_and_message(&body),
        Some(("Ecs.xxxx".to_owned(), "xxxxxxxxxxxxxxx".to_owned()))
    );
}

#[test]
fn flat_gateway_error_body() {
    let body = fixture("error-iam-flat.json");
    let parsed: GatewayErrorBody = serde_json::from_slice(&body).unwrap();
    assert_eq!(parsed.error_code, "AS.0001");
    assert_eq!(parsed.request_id, None);
    assert_eq!(
        error_code_and_message(&body),
        Some((
            "AS.0001".to_owned(),
            "The format of message is error".to_owned()
        ))
    );
}
