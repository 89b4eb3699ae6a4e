//! The server object as `GET .../cloudservers/detail` and `GET .../cloudservers/{id}`
//! send it: every field the OTC show-server and data-structure docs list, with
//! plausible values, so a client written against the real API finds objects where
//! the cloud sends objects. The simulator's own wire type; the operator reads the
//! part it needs with `ecs::wire::ServerDetail`.

use super::profile::ProjectProfile;
use super::server::{ServerSnapshot, VmState};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use std::borrow::Cow;

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
struct Address {
    version: &'static str,
    addr: String,
    #[serde(rename = "OS-EXT-IPS-MAC:mac_addr")]
    mac_addr: String,
    #[serde(rename = "OS-EXT-IPS:type")]
    ip_type: &'static str,
    #[serde(rename = "OS-EXT-IPS:port_id")]
    port_id: String,
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
    id: String,
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
struct Metadata<'a> {
    charging_mode: &'static str,
    vpc_id: &'a str,
    #[serde(rename = "metering.image_id")]
    image_id: &'static str,
    #[serde(rename = "metering.imagetype")]
    image_type: &'static str,
    #[serde(rename = "metering.resourcespeccode")]
    resource_spec_code: String,
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

/// Every field is an `Option` so that an id the `server_id` filter names but the
/// project does not have renders as the SDK docs say: only `id` and `fault` set.
#[derive(Serialize, Default)]
pub(super) struct ServerJson<'a> {
    id: String,
    name: Option<Cow<'a, str>>,
    addresses: Option<OneEntry<'a, [Address; 1]>>,
    flavor: Option<Flavor>,
    #[serde(rename = "accessIPv4")]
    access_ipv4: Option<&'static str>,
    #[serde(rename = "accessIPv6")]
    access_ipv6: Option<&'static str>,
    status: Option<&'static str>,
    progress: Option<u8>,
    #[serde(rename = "hostId")]
    host_id: Option<String>,
    image: Option<IdOnly>,
    updated: Option<String>,
    created: Option<String>,
    metadata: Option<Metadata<'a>>,
    tags: Option<Vec<&'a str>>,
    description: Option<&'static str>,
    locked: Option<bool>,
    config_drive: Option<&'static str>,
    tenant_id: Option<&'a str>,
    user_id: Option<&'a str>,
    key_name: Option<String>,
    #[serde(rename = "os-extended-volumes:volumes_attached")]
    volumes_attached: Option<[Volume; 1]>,
    #[serde(rename = "OS-EXT-STS:task_state")]
    task_state: Option<&'static str>,
    #[serde(rename = "OS-EXT-STS:power_state")]
    power_state: Option<u8>,
    #[serde(rename = "OS-EXT-STS:vm_state")]
    vm_state: Option<&'static str>,
    #[serde(rename = "OS-EXT-SRV-ATTR:host")]
    host: Option<String>,
    #[serde(rename = "OS-EXT-SRV-ATTR:instance_name")]
    instance_name: Option<String>,
    #[serde(rename = "OS-EXT-SRV-ATTR:hypervisor_hostname")]
    hypervisor_hostname: Option<String>,
    #[serde(rename = "OS-DCF:diskConfig")]
    disk_config: Option<&'static str>,
    #[serde(rename = "OS-EXT-AZ:availability_zone")]
    availability_zone: Option<&'static str>,
    #[serde(rename = "os:scheduler_hints")]
    scheduler_hints: Option<Empty>,
    #[serde(rename = "OS-EXT-SRV-ATTR:root_device_name")]
    root_device_name: Option<&'static str>,
    #[serde(rename = "OS-EXT-SRV-ATTR:ramdisk_id")]
    ramdisk_id: Option<&'static str>,
    #[serde(rename = "OS-EXT-SRV-ATTR:kernel_id")]
    kernel_id: Option<&'static str>,
    /// Null: no user data was given at creation.
    #[serde(rename = "OS-EXT-SRV-ATTR:user_data")]
    user_data: Option<&'static str>,
    #[serde(rename = "OS-SRV-USG:launched_at")]
    launched_at: Option<String>,
    /// Null: the server is not deleted.
    #[serde(rename = "OS-SRV-USG:terminated_at")]
    terminated_at: Option<&'static str>,
    #[serde(rename = "OS-EXT-SRV-ATTR:launch_index")]
    launch_index: Option<usize>,
    host_status: Option<&'static str>,
    #[serde(rename = "OS-EXT-SRV-ATTR:reservation_id")]
    reservation_id: Option<String>,
    #[serde(rename = "OS-EXT-SRV-ATTR:hostname")]
    hostname: Option<Cow<'a, str>>,
    sys_tags: Option<[SysTag; 1]>,
    security_groups: Option<[SecurityGroup<'a>; 1]>,
    security_options: Option<SecurityOptions>,
    fault: Option<Fault>,
}

fn server_time(unix_seconds: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(unix_seconds).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

impl<'a> ServerJson<'a> {
    pub(super) fn of(server: &'a ServerSnapshot, project: &'a ProjectProfile) -> Self {
        let profile = project.server(server.number);
        let (vm_state, power_state) = match server.vm {
            VmState::Active => ("active", 1),
            VmState::Stopped => ("stopped", 4),
            VmState::Error => ("error", 0),
        };
        let custom = server.custom.as_ref();
        let name: Cow<'a, str> = match custom.and_then(|c| c.name.as_deref()) {
            Some(name) => Cow::Borrowed(name),
            None => Cow::Owned(profile.name()),
        };
        let tags = match custom.and_then(|c| c.tags.as_deref()) {
            Some(tags) => tags.iter().map(|t| &**t).collect(),
            None => profile.tags().to_vec(),
        };
        let (flavor, vcpus, ram) = profile.flavor();
        let (image_name, image_id) = profile.image();
        let (sg_id, sg_name) = profile.security_group();
        let created = server_time(server.created);
        ServerJson {
            id: server.id.to_string(),
            hostname: Some(name.clone()),
            name: Some(name),
            addresses: Some(OneEntry(
                &project.vpc_id,
                [Address {
                    version: "4",
                    addr: profile.ip(),
                    mac_addr: profile.mac(),
                    ip_type: "fixed",
                    port_id: profile.port_id(),
                }],
            )),
            flavor: Some(Flavor {
                id: flavor,
                name: flavor,
                disk: "0",
                vcpus,
                ram,
            }),
            access_ipv4: Some(""),
            access_ipv6: Some(""),
            status: Some(server.status.as_str()),
            progress: Some(0),
            host_id: Some(profile.host_id()),
            image: Some(IdOnly { id: image_id }),
            updated: Some(
                server_time(server.updated)
                    .strftime("%Y-%m-%dT%H:%M:%SZ")
                    .to_string(),
            ),
            created: Some(created.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
            metadata: Some(Metadata {
                charging_mode: "0",
                vpc_id: &project.vpc_id,
                image_id,
                image_type: "gold",
                resource_spec_code: format!("{flavor}.linux"),
                resource_type: "1",
                image_name,
                os_bit: "64",
                os_type: "Linux",
                lock_check_endpoint: "",
                lock_source: "",
                lock_source_id: "",
                lock_scene: "",
            }),
            tags: Some(tags),
            description: Some(""),
            locked: Some(server.locked),
            config_drive: Some(""),
            tenant_id: Some(&project.project_id),
            user_id: Some(&project.user_id),
            key_name: Some(profile.key_name()),
            volumes_attached: Some([Volume {
                id: profile.volume_id(),
                delete_on_termination: "false",
                device: "/dev/vda",
                boot_index: "0",
            }]),
            task_state: server.task.map(|t| t.as_str()),
            power_state: Some(power_state),
            vm_state: Some(vm_state),
            host: Some(profile.host_name()),
            instance_name: Some(profile.instance_name()),
            hypervisor_hostname: Some(profile.hypervisor_hostname()),
            disk_config: Some("MANUAL"),
            availability_zone: Some(profile.availability_zone()),
            scheduler_hints: Some(Empty {}),
            root_device_name: Some("/dev/vda"),
            ramdisk_id: Some(""),
            kernel_id: Some(""),
            user_data: None,
            launched_at: Some(
                server_time(server.created + LAUNCH_SECONDS)
                    .strftime("%Y-%m-%dT%H:%M:%S.000000")
                    .to_string(),
            ),
            terminated_at: None,
            launch_index: Some(profile.launch_index()),
            host_status: Some("UP"),
            reservation_id: Some(profile.reservation_id()),
            sys_tags: Some([SysTag {
                key: "_sys_enterprise_project_id",
                value: "0",
            }]),
            security_groups: Some([SecurityGroup {
                id: sg_id,
                name: sg_name,
            }]),
            security_options: Some(SecurityOptions { tpm_enabled: false }),
            fault: None,
        }
    }

    /// An id the `server_id` filter names that the project does not have.
    pub(super) fn missing(id: &str, now: jiff::Timestamp) -> Self {
        ServerJson {
            id: id.to_owned(),
            fault: Some(Fault {
                code: 404,
                message: format!("Instance {id} could not be found"),
                details: "",
                created: now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            }),
            ..ServerJson::default()
        }
    }
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
