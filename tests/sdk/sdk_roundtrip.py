"""Drives ecs-sim with the OFFICIAL Huawei Cloud Python SDK (huaweicloudsdkecs),
unchanged, to prove the simulator speaks the wire protocol the real client speaks:
signing (User-Agent, Host with port), pagination by page and by marker, the tags
and server_id filters, the server object's fields, batch stop, job polling, errors.

Run by tests/sim_python_sdk.rs; configuration comes from the environment:
SIM_ENDPOINT (http://127.0.0.1:PORT), SIM_AK, SIM_SK, SIM_PROJECT_ID, SIM_SERVERS.
Exits non-zero on the first broken expectation.
"""

import os
import sys
import time

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkecs.v2 import (
    BatchStopServersOption,
    BatchStopServersRequest,
    BatchStopServersRequestBody,
    EcsClient,
    ListServersDetailsRequest,
    ServerId,
    ShowJobRequest,
    ShowServerRequest,
)

PAGE = 1000
STOP = 1000


def client():
    config = HttpConfig.get_default_config()
    # The simulator speaks plain http on loopback; nothing to verify.
    config.ignore_ssl_verification = True
    config.timeout = (5, 30)
    # With a project id in the credentials the SDK needs no IAM call.
    credentials = BasicCredentials(
        os.environ["SIM_AK"], os.environ["SIM_SK"], os.environ["SIM_PROJECT_ID"]
    )
    return (
        EcsClient.new_builder()
        .with_http_config(config)
        .with_credentials(credentials)
        .with_endpoints([os.environ["SIM_ENDPOINT"]])
        .build()
    )


def list_all(ecs, status=None):
    """Pages by page number (offset=1,2,...) until `count` servers are collected."""
    servers, page = [], 1
    while True:
        reply = ecs.list_servers_details(
            ListServersDetailsRequest(offset=page, limit=PAGE, status=status)
        )
        servers.extend(reply.servers)
        if len(servers) >= reply.count or len(reply.servers) < PAGE:
            return servers, reply.count
        page += 1


def check(condition, message):
    if not condition:
        print("FAILED: " + message, file=sys.stderr)
        sys.exit(1)


def main():
    ecs = client()
    expected = int(os.environ["SIM_SERVERS"])

    servers, count = list_all(ecs)
    ids = [s.id for s in servers]
    check(count == expected, f"count {count} != {expected}")
    check(len(set(ids)) == expected, f"{len(set(ids))} distinct ids, expected {expected}")
    check(all(s.status == "ACTIVE" for s in servers), "not every server starts ACTIVE")

    first = servers[0]
    check(first.flavor is not None and first.flavor.vcpus.isdigit(), f"flavor {first.flavor}")
    check(first.image is not None and bool(first.image.id), "no image id")
    address = next(iter(first.addresses.values()))[0]
    check(bool(address.addr) and address.os_ext_ip_stype == "fixed", f"address {address}")
    check(first.security_groups[0].name.startswith("sg-"), "no security group")
    check(
        first.os_extended_volumesvolumes_attached[0].device == "/dev/vda",
        "no system disk",
    )
    check(first.metadata.get("os_type") == "Linux", f"metadata {first.metadata}")
    check(len(first.tags) == 5 and first.tags[0].startswith("env="), f"tags {first.tags}")
    env, team = first.tags[0][4:], first.tags[1][5:]
    check(first.name.startswith(f"{env}-{team}-"), f"name {first.name} and tags {first.tags}")

    dev_a = [s.id for s in servers if "env=dev" in s.tags and "team=a" in s.tags]
    reply = ecs.list_servers_details(
        ListServersDetailsRequest(tags="env=dev,team=a", limit=PAGE)
    )
    check(reply.count == len(dev_a), f"tags filter: {reply.count} != {len(dev_a)}")
    check([s.id for s in reply.servers] == dev_a[:PAGE], "tags filter lists other servers")
    reply = ecs.list_servers_details(
        ListServersDetailsRequest(limit=PAGE, marker=ids[PAGE - 1])
    )
    check(reply.servers[0].id == ids[PAGE], "the marker page does not start after the marker")
    reply = ecs.list_servers_details(ListServersDetailsRequest(server_id=",".join(ids[:3])))
    check([s.id for s in reply.servers] == ids[:3], "server_id lists other servers")

    target = ids[:STOP]
    body = BatchStopServersRequestBody(
        os_stop=BatchStopServersOption(
            servers=[ServerId(id=i) for i in target], type="SOFT"
        )
    )
    job_id = ecs.batch_stop_servers(BatchStopServersRequest(body=body)).job_id
    check(bool(job_id), "batch stop returned no job_id")

    deadline = time.monotonic() + 30
    while True:
        job = ecs.show_job(ShowJobRequest(job_id=job_id))
        if job.status in ("SUCCESS", "FAIL"):
            break
        check(time.monotonic() < deadline, f"job {job_id} still {job.status}")
        time.sleep(0.1)
    check(job.status == "SUCCESS", f"job ended {job.status}")
    check(job.entities.sub_jobs_total == STOP, f"sub_jobs_total {job.entities.sub_jobs_total}")
    sub_servers = {sub.entities.server_id for sub in job.entities.sub_jobs}
    check(sub_servers == set(target), "sub-jobs do not cover the stopped servers")
    check(all(sub.status == "SUCCESS" for sub in job.entities.sub_jobs), "a sub-job failed")

    for server_id in (target[0], target[STOP // 2], target[-1]):
        server = ecs.show_server(ShowServerRequest(server_id=server_id)).server
        check(server.status == "SHUTOFF", f"{server_id} is {server.status}")
        check(server.os_ext_st_svm_state == "stopped", f"vm_state {server.os_ext_st_svm_state}")
        check(server.os_ext_st_spower_state == 4, f"power_state {server.os_ext_st_spower_state}")
    stopped, stopped_count = list_all(ecs, status="SHUTOFF")
    check(stopped_count == STOP and len(stopped) == STOP, f"{stopped_count} SHUTOFF listed")

    try:
        ecs.show_job(ShowJobRequest(job_id="0" * 32))
        check(False, "an unknown job was found")
    except ClientRequestException as e:
        check(e.status_code == 400 and e.error_code == "Common.0011", f"unknown job: {e}")
        check(bool(e.request_id), "the SDK saw no X-Request-Id")

    print(f"SDK roundtrip OK: listed {count}, stopped {STOP} in job {job_id}")


if __name__ == "__main__":
    main()
