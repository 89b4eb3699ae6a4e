//! The server object as `GET .../cloudservers/detail` and `GET .../cloudservers/{id}`
//! send it: every field the OTC show-server and data-structure docs list, with
//! plausible values, so a client written against the real API finds objects where
//! the cloud sends objects. The simulator's own wire type; the operator reads the
//! part it needs with `ecs::wire::ServerDetail`.

use super::profile::ProjectProfile;
use super::server::{ServerSnapshot, VmState};
use super::shown::{Shown, Text};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use uuid::Uuid;

/// Seconds from created to `OS-SRV-USG:launched_at`.
const LAUNCH_SECONDS: i64 = 37;

/// A one-entry JSON object with a key only known at run time (`addresses`).
struct OneEntry<'a, V>(&'a str, V);

impl<V: Serialize> Serialize for OneEntry<'_, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(self.0, &self.1)?;
        map.end()
    }
}

#[derive(Serialize)]
struct Address<A: Serialize, M: Serialize> {
    version: &'static str,
    addr: A,
    #[serde(rename = "OS-EXT-IPS-MAC:mac_addr")]
    mac_addr: M,
    #[serde(rename = "OS-EXT-IPS:type")]
    ip_type: &'static str,
    #[serde(rename = "OS-EXT-IPS:port_id")]
    port_id: Uuid,
}

#[derive(Serialize)]
struct Flavor {
    id: &'static str,
    name: &'static str,
    disk: &'static str,
    vcpus: &'static str,
    ram: &'static str,
}

#[derive(Serialize)]
struct IdOnly {
    id: &'static str,
}

#[derive(Serialize)]
struct SecurityGroup<'a> {
    id: &'a str,
    name: &'static str,
}

#[derive(Serialize)]
struct Volume {
    id: Uuid,
    delete_on_termination: &'static str,
    device: &'static str,
    #[serde(rename = "bootIndex")]
    boot_index: &'static str,
}

#[derive(Serialize)]
struct SysTag {
    key: &'static str,
    value: &'static str,
}

#[derive(Serialize)]
struct SecurityOptions {
    tpm_enabled: bool,
}

#[derive(Serialize)]
struct Empty {}

/// The system fields of `metadata` (data-structure doc, Table 4).
#[derive(Serialize)]
struct Metadata<'a, C: Serialize> {
    charging_mode: &'static str,
    vpc_id: &'a str,
    #[serde(rename = "metering.image_id")]
    image_id: &'static str,
    #[serde(rename = "metering.imagetype")]
    image_type: &'static str,
    #[serde(rename = "metering.resourcespeccode")]
    resource_spec_code: C,
    #[serde(rename = "metering.resourcetype")]
    resource_type: &'static str,
    image_name: &'static str,
    os_bit: &'static str,
    os_type: &'static str,
    #[serde(rename = "lockCheckEndpoint")]
    lock_check_endpoint: &'static str,
    #[serde(rename = "lockSource")]
    lock_source: &'static str,
    #[serde(rename = "lockSourceId")]
    lock_source_id: &'static str,
    #[serde(rename = "lockScene")]
    lock_scene: &'static str,
}

#[derive(Serialize)]
struct Fault {
    code: u16,
    message: String,
    details: &'static str,
    created: String,
}

/// The keys of the server object in the order it is sent (the show-server example's).
const FIELDS: [&str; 45] = [
    "id",
    "name",
    "addresses",
    "flavor",
    "accessIPv4",
    "accessIPv6",
    "status",
    "progress",
    "hostId",
    "image",
    "updated",
    "created",
    "metadata",
    "tags",
    "description",
    "locked",
    "config_drive",
    "tenant_id",
    "user_id",
    "key_name",
    "os-extended-volumes:volumes_attached",
    "OS-EXT-STS:task_state",
    "OS-EXT-STS:power_state",
    "OS-EXT-STS:vm_state",
    "OS-EXT-SRV-ATTR:host",
    "OS-EXT-SRV-ATTR:instance_name",
    "OS-EXT-SRV-ATTR:hypervisor_hostname",
    "OS-DCF:diskConfig",
    "OS-EXT-AZ:availability_zone",
    "os:scheduler_hints",
    "OS-EXT-SRV-ATTR:root_device_name",
    "OS-EXT-SRV-ATTR:ramdisk_id",
    "OS-EXT-SRV-ATTR:kernel_id",
    "OS-EXT-SRV-ATTR:user_data",
    "OS-SRV-USG:launched_at",
    "OS-SRV-USG:terminated_at",
    "OS-EXT-SRV-ATTR:launch_index",
    "host_status",
    "OS-EXT-SRV-ATTR:reservation_id",
    "OS-EXT-SRV-ATTR:hostname",
    "sys_tags",
    "security_groups",
    "security_options",
    "fault",
    // Not in the docs' tables but in their examples: the same for every server.
    "enterprise_project_id",
];

/// One entry of a listing or the object of show-server.
pub(super) enum ServerJson<'a> {
    Present {
        server: &'a ServerSnapshot,
        project: &'a ProjectProfile,
    },
    /// An id the `server_id` filter names that the project does not have: every
    /// field null but `id` and `fault`, as the SDK docs say.
    Missing { id: &'a str, now: jiff::Timestamp },
}

impl<'a> ServerJson<'a> {
    pub(super) fn of(server: &'a ServerSnapshot, project: &'a ProjectProfile) -> Self {
        ServerJson::Present { server, project }
    }

    pub(super) fn missing(id: &'a str, now: jiff::Timestamp) -> Self {
        ServerJson::Missing { id, now }
    }
}

fn server_time(unix_seconds: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(unix_seconds).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// Seconds as `2019-05-22T03:30:52Z`.
fn second_time(unix_seconds: i64) -> impl std::fmt::Display {
    server_time(unix_seconds).strftime("%Y-%m-%dT%H:%M:%SZ")
}

impl Serialize for ServerJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(FIELDS.len()))?;
        match *self {
            ServerJson::Missing { id, now } => {
                for key in FIELDS {
                    match key {
                        "id" => map.serialize_entry(key, id)?,
                        "fault" => map.serialize_entry(
                            key,
                            &Fault {
                                code: 404,
                                message: format!("Instance {id} could not be found"),
                                details: "",
                                created: now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                            },
                        )?,
                        _ => map.serialize_entry(key, &())?,
                    }
                }
            }
            ServerJson::Present { server, project } => {
                present(&mut map, server, project)?;
            }
        }
        map.end()
    }
}

/// The entries of a server, in [`FIELDS`] order.
fn present<M: SerializeMap>(
    map: &mut M,
    server: &ServerSnapshot,
    project: &ProjectProfile,
) -> Result<(), M::Error> {
    let profile = project.server(server.number);
    let (vm_state, power_state) = match server.vm {
        VmState::Active => ("active", 1),
        VmState::Stopped => ("stopped", 4),
        VmState::Error => ("error", 0),
    };
    let custom = server.custom.as_ref();
    let custom_name = custom.and_then(|c| c.name.as_deref());
    let name = Shown(|f: &mut std::fmt::Formatter<'_>| match custom_name {
        Some(name) => f.write_str(name),
        None => write!(f, "{}", profile.name()),
    });
    let (flavor, vcpus, ram) = profile.flavor();
    let (image_name, image_id) = profile.image();
    let (sg_id, sg_name) = profile.security_group();

    map.serialize_entry("id", &server.id)?;
    map.serialize_entry("name", &name)?;
    map.serialize_entry(
        "addresses",
        &OneEntry(
            &project.vpc_id,
            [Address {
                version: "4",
                addr: Text(profile.ip()),
                mac_addr: Text(profile.mac()),
                ip_type: "fixed",
                port_id: profile.port_id(),
            }],
        ),
    )?;
    map.serialize_entry(
        "flavor",
        &Flavor {
            id: flavor,
            name: flavor,
            disk: "0",
            vcpus,
            ram,
        },
    )?;
    map.serialize_entry("accessIPv4", "")?;
    map.serialize_entry("accessIPv6", "")?;
    map.serialize_entry("status", server.status.as_str())?;
    map.serialize_entry("progress", &0)?;
    map.serialize_entry("hostId", &Text(profile.host_id()))?;
    map.serialize_entry("image", &IdOnly { id: image_id })?;
    map.serialize_entry("updated", &Text(second_time(server.updated)))?;
    map.serialize_entry("created", &Text(second_time(server.created)))?;
    map.serialize_entry(
        "metadata",
        &Metadata {
            charging_mode: "0",
            vpc_id: &project.vpc_id,
            image_id,
            image_type: "gold",
            resource_spec_code: Shown(|f: &mut std::fmt::Formatter<'_>| {
                write!(f, "{flavor}.linux")
            }),
            resource_type: "1",
            image_name,
            os_bit: "64",
            os_type: "Linux",
            lock_check_endpoint: "",
            lock_source: "",
            lock_source_id: "",
            lock_scene: "",
        },
    )?;
    match custom.and_then(|c| c.tags.as_deref()) {
        Some(tags) => {
            let tags: Vec<&str> = tags.iter().map(|t| &**t).collect();
            map.serialize_entry("tags", &tags)?
        }
        None => map.serialize_entry("tags", &profile.tags())?,
    }
    map.serialize_entry("description", "")?;
    map.serialize_entry("locked", &server.locked)?;
    map.serialize_entry("config_drive", "")?;
    map.serialize_entry("tenant_id", &project.project_id)?;
    map.serialize_entry("user_id", &project.user_id)?;
    map.serialize_entry("key_name", &Text(profile.key_name()))?;
    map.serialize_entry(
        "os-extended-volumes:volumes_attached",
        &[Volume {
            id: profile.volume_id(),
            delete_on_termination: "false",
            device: "/dev/vda",
            boot_index: "0",
        }],
    )?;
    map.serialize_entry("OS-EXT-STS:task_state", &server.task.map(|t| t.as_str()))?;
    map.serialize_entry("OS-EXT-STS:power_state", &power_state)?;
    map.serialize_entry("OS-EXT-STS:vm_state", vm_state)?;
    map.serialize_entry("OS-EXT-SRV-ATTR:host", &Text(profile.host_name()))?;
    map.serialize_entry(
        "OS-EXT-SRV-ATTR:instance_name",
        &Text(profile.instance_name()),
    )?;
    map.serialize_entry(
        "OS-EXT-SRV-ATTR:hypervisor_hostname",
        &Text(profile.hypervisor_hostname()),
    )?;
    map.serialize_entry("OS-DCF:diskConfig", "MANUAL")?;
    map.serialize_entry("OS-EXT-AZ:availability_zone", profile.availability_zone())?;
    map.serialize_entry("os:scheduler_hints", &Empty {})?;
    map.serialize_entry("OS-EXT-SRV-ATTR:root_device_name", "/dev/vda")?;
    map.serialize_entry("OS-EXT-SRV-ATTR:ramdisk_id", "")?;
    map.serialize_entry("OS-EXT-SRV-ATTR:kernel_id", "")?;
    // Null: no user data was given at creation.
    map.serialize_entry("OS-EXT-SRV-ATTR:user_data", &())?;
    map.serialize_entry(
        "OS-SRV-USG:launched_at",
        &Shown(|f: &mut std::fmt::Formatter<'_>| {
            let launched = server_time(server.created + LAUNCH_SECONDS);
            write!(f, "{}", launched.strftime("%Y-%m-%dT%H:%M:%S.000000"))
        }),
    )?;
    // Null: the server is not deleted.
    map.serialize_entry("OS-SRV-USG:terminated_at", &())?;
    map.serialize_entry("OS-EXT-SRV-ATTR:launch_index", &profile.launch_index())?;
    map.serialize_entry("host_status", "UP")?;
    map.serialize_entry(
        "OS-EXT-SRV-ATTR:reservation_id",
        &Text(profile.reservation_id()),
    )?;
    map.serialize_entry("OS-EXT-SRV-ATTR:hostname", &name)?;
    map.serialize_entry(
        "sys_tags",
        &[SysTag {
            key: "_sys_enterprise_project_id",
            value: "0",
        }],
    )?;
    map.serialize_entry(
        "security_groups",
        &[SecurityGroup {
            id: sg_id,
            name: sg_name,
        }],
    )?;
    map.serialize_entry("security_options", &SecurityOptions { tpm_enabled: false })?;
    map.serialize_entry("fault", &())?;
    map.serialize_entry("enterprise_project_id", "0")
}

/// `{"count": N, "servers": [...]}`.
#[derive(Serialize)]
pub(super) struct ServerPage<'a> {
    pub(super) count: u64,
    pub(super) servers: Vec<ServerJson<'a>>,
}

/// `{"server": {...}}`.
#[derive(Serialize)]
pub(super) struct ShowServer<'a> {
    pub(super) server: ServerJson<'a>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_present_and_a_missing_server_send_the_same_keys() {
        let project = ProjectProfile::new(1, "0123456789abcdef0123456789abcdef");
        let server = ServerSnapshot {
            number: 7,
            id: Uuid::nil(),
            status: super::super::Status::Active,
            vm: VmState::Active,
            task: None,
            locked: false,
            created: 1_700_000_000,
            updated: 1_700_000_000,
            custom: None,
        };
        let keys = |json: &ServerJson<'_>| -> Vec<String> {
            let value: serde_json::Value =
                serde_json::from_str(&serde_json::to_string(json).unwrap()).unwrap();
            value.as_object().unwrap().keys().cloned().collect()
        };
        let mut expected: Vec<String> = FIELDS.iter().map(|k| k.to_string()).collect();
        expected.sort(); // serde_json's map without preserve_order sorts keys
        assert_eq!(keys(&ServerJson::of(&server, &project)), expected);
        let missing = ServerJson::missing("x", jiff::Timestamp::UNIX_EPOCH);
        assert_eq!(keys(&missing), expected);
    }
}
