//! What a server looks like beyond its power state (name, tags, flavor, image,
//! addresses, disks, host), derived from the seed and the server's number instead of
//! stored: 100,000 servers cost no memory for it. Only names and tags set through the
//! admin surface are stored (see [`super::server::Custom`]).

use super::shown::Shown;
use std::fmt;
use uuid::Uuid;

/// `env` tags, in the order the seed picks them; a name starts with the value.
const ENV_TAGS: [&str; 3] = ["env=dev", "env=test", "env=prod"];
const TEAM_TAGS: [&str; 5] = ["team=a", "team=b", "team=c", "team=d", "team=e"];
const APP_TAGS: [&str; 6] = [
    "app=web",
    "app=api",
    "app=db",
    "app=cache",
    "app=batch",
    "app=queue",
];
const BACKUP_TAGS: [&str; 3] = ["backup=daily", "backup=weekly", "backup=none"];
const SCHEDULE_TAGS: [&str; 3] = [
    "schedule=office-hours",
    "schedule=always-on",
    "schedule=nightly",
];

/// The tags every server gets from the seed, one of each table.
pub(super) const DERIVED_TAG_COUNT: usize = 5;

/// (flavor id, vCPUs, RAM MiB), as the flavor object spells them: strings.
const FLAVORS: [(&str, &str, &str); 4] = [
    ("s3.medium.2", "1", "2048"),
    ("s3.large.2", "2", "4096"),
    ("c4.xlarge.2", "4", "8192"),
    ("m6.large.8", "2", "16384"),
];

/// (image name, image id): public images, as `metadata.image_name` names them.
const IMAGES: [(&str, &str); 3] = [
    (
        "Standard_Ubuntu_22.04_latest",
        "3f6d8b63-2d7b-4b55-9a51-5d2c1b8b2a01",
    ),
    (
        "Standard_Debian_12_latest",
        "7c1e4f0a-93b8-4e02-8d3f-2a6b9e4c7d02",
    ),
    (
        "Enterprise_RedHat_9_latest",
        "b25a9d7e-61c4-4f3a-a8e0-4d9c2f1b6e03",
    ),
];

pub(super) const AVAILABILITY_ZONES: [&str; 3] = ["eu-de-01", "eu-de-02", "eu-de-03"];

/// Servers per simulated hypervisor host.
const SERVERS_PER_HOST: usize = 40;
/// Servers created per simulated batch (one `reservation_id`).
const SERVERS_PER_RESERVATION: usize = 100;

// Salts keep the derived streams apart.
const SALT_PICK: u64 = 0x7a65_6e76_7465_616d;
const SALT_PORT: u64 = 0x706f_7274;
const SALT_VOLUME: u64 = 0x766f_6c75_6d65;
const SALT_HOST: u64 = 0x686f_7374;
const SALT_RESERVATION: u64 = 0x7265_7365_7276;
const SALT_PROJECT: u64 = 0x0070_726f_6a65_6374;

/// splitmix64: a cheap, well-mixed hash of (seed, number, salt).
fn mix(seed: u64, number: u64, salt: u64) -> u64 {
    let mut z = seed
        ^ salt.wrapping_mul(0xd6e8_feb8_6659_fd93)
        ^ number.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn derived_uuid(seed: u64, number: u64, salt: u64) -> Uuid {
    let high = mix(seed, number, salt);
    let low = mix(seed, number, salt.rotate_left(17));
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&high.to_be_bytes());
    bytes[8..].copy_from_slice(&low.to_be_bytes());
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// What the whole project shares: one VPC, one user, one security group per env.
#[derive(Debug)]
pub(super) struct ProjectProfile {
    pub(super) seed: u64,
    pub(super) project_id: String,
    pub(super) user_id: String,
    pub(super) vpc_id: String,
    pub(super) security_groups: [String; 3],
}

impl ProjectProfile {
    pub(super) fn new(seed: u64, project_id: &str) -> Self {
        let id = |n: u64| derived_uuid(seed, n, SALT_PROJECT).to_string();
        Self {
            seed,
            project_id: project_id.to_owned(),
            user_id: derived_uuid(seed, u64::MAX, SALT_PROJECT)
                .simple()
                .to_string(),
            vpc_id: id(0),
            security_groups: [id(1), id(2), id(3)],
        }
    }

    pub(super) fn server(&self, number: usize) -> ServerProfile<'_> {
        ServerProfile {
            project: self,
            number,
            pick: mix(self.seed, number as u64, SALT_PICK),
        }
    }
}

/// One server's derived attributes.
#[derive(Debug, Clone, Copy)]
pub(super) struct ServerProfile<'a> {
    pub(super) project: &'a ProjectProfile,
    number: usize,
    pick: u64,
}

impl<'a> ServerProfile<'a> {
    /// Picks from a table of `len` with its own bits of the hash, so the choices
    /// are independent of each other.
    fn choose(&self, slot: u32, len: usize) -> usize {
        ((self.pick >> (slot * 12)) & 0xfff) as usize % len
    }

    fn env(&self) -> usize {
        self.choose(0, ENV_TAGS.len())
    }

    fn team(&self) -> usize {
        self.choose(1, TEAM_TAGS.len())
    }

    /// `env=..`, `team=..`, `app=..`, `backup=..`, `schedule=..`.
    pub(super) fn tags(&self) -> [&'static str; DERIVED_TAG_COUNT] {
        [
            ENV_TAGS[self.env()],
            TEAM_TAGS[self.team()],
            APP_TAGS[self.choose(2, APP_TAGS.len())],
            BACKUP_TAGS[self.choose(3, BACKUP_TAGS.len())],
            SCHEDULE_TAGS[self.choose(4, SCHEDULE_TAGS.len())],
        ]
    }

    /// `<env>-<team>-NNNNN`, NNNNN the server's number in creation order.
    pub(super) fn name(&self) -> impl fmt::Display + use<> {
        let value = |tag: &'static str| tag.split_once('=').map_or(tag, |(_, v)| v);
        let env = value(ENV_TAGS[self.env()]);
        let team = value(TEAM_TAGS[self.team()]);
        let number = self.number;
        Shown(move |f: &mut fmt::Formatter<'_>| write!(f, "{env}-{team}-{number:05}"))
    }

    pub(super) fn availability_zone(&self) -> &'static str {
        AVAILABILITY_ZONES[self.number % AVAILABILITY_ZONES.len()]
    }

    /// (id, vCPUs, RAM MiB).
    pub(super) fn flavor(&self) -> (&'static str, &'static str, &'static str) {
        FLAVORS[self.choose(5, FLAVORS.len())]
    }

    /// (name, id).
    pub(super) fn image(&self) -> (&'static str, &'static str) {
        IMAGES[self.env() % IMAGES.len()]
    }

    pub(super) fn security_group(&self) -> (&'a str, &'static str) {
        let env = self.env();
        let name = ["sg-dev", "sg-test", "sg-prod"][env];
        (&self.project.security_groups[env], name)
    }

    pub(super) fn key_name(&self) -> impl fmt::Display + use<> {
        let team = TEAM_TAGS[self.team()];
        let team = &team[team.len() - 1..];
        Shown(move |f: &mut fmt::Formatter<'_>| write!(f, "KeyPair-{team}"))
    }

    /// A private IPv4 address, unique per server up to 16 million servers.
    pub(super) fn ip(&self) -> impl fmt::Display + use<> {
        let number = self.number;
        Shown(move |f: &mut fmt::Formatter<'_>| {
            let subnet = number / 250;
            let host = number % 250 + 2;
            write!(f, "10.{}.{}.{host}", (subnet >> 8) & 0xff, subnet & 0xff)
        })
    }

    pub(super) fn mac(&self) -> impl fmt::Display + use<> {
        let n = self.number;
        Shown(move |f: &mut fmt::Formatter<'_>| {
            let byte = |shift: usize| (n >> shift) & 0xff;
            write!(
                f,
                "fa:16:3e:{:02x}:{:02x}:{:02x}",
                byte(16),
                byte(8),
                byte(0)
            )
        })
    }

    pub(super) fn port_id(&self) -> Uuid {
        derived_uuid(self.project.seed, self.number as u64, SALT_PORT)
    }

    pub(super) fn volume_id(&self) -> Uuid {
        derived_uuid(self.project.seed, self.number as u64, SALT_VOLUME)
    }

    fn host(&self) -> usize {
        self.number / SERVERS_PER_HOST
    }

    /// 56 hex digits, the same for every server on one host, as the cloud's hash is.
    pub(super) fn host_id(&self) -> impl fmt::Display + use<> {
        let host = self.host() as u64;
        let words = [0, 1, 2, 3].map(|i| mix(self.project.seed, host, SALT_HOST + i));
        Shown(move |f: &mut fmt::Formatter<'_>| {
            let [a, b, c, d] = words;
            write!(f, "{a:016x}{b:016x}{c:016x}{:08x}", d >> 32)
        })
    }

    pub(super) fn host_name(&self) -> impl fmt::Display + use<> {
        let az = self.availability_zone();
        Shown(move |f: &mut fmt::Formatter<'_>| write!(f, "{az}.dc1"))
    }

    pub(super) fn hypervisor_hostname(&self) -> impl fmt::Display + use<> {
        let host = self.host();
        Shown(move |f: &mut fmt::Formatter<'_>| write!(f, "nova{:03}@{}", host % 1000, host % 97))
    }

    pub(super) fn instance_name(&self) -> impl fmt::Display + use<> {
        let number = self.number;
        Shown(move |f: &mut fmt::Formatter<'_>| write!(f, "instance-{number:08x}"))
    }

    pub(super) fn reservation_id(&self) -> impl fmt::Display + use<> {
        let batch = (self.number / SERVERS_PER_RESERVATION) as u64;
        let code = mix(self.project.seed, batch, SALT_RESERVATION);
        Shown(move |f: &mut fmt::Formatter<'_>| {
            const BASE36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
            f.write_str("r-")?;
            (0..8).try_for_each(|i| {
                let digit = BASE36[((code >> (i * 6)) % 36) as usize];
                fmt::Write::write_char(f, digit as char)
            })
        })
    }

    pub(super) fn launch_index(&self) -> usize {
        self.number % SERVERS_PER_RESERVATION
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_tags_depend_on_seed_and_number_only() {
        let a = ProjectProfile::new(7, "p");
        let b = ProjectProfile::new(7, "p");
        for n in [0, 1, 99_999] {
            assert_eq!(a.server(n).tags(), b.server(n).tags());
            assert_eq!(
                a.server(n).name().to_string(),
                b.server(n).name().to_string()
            );
        }
        let name = a.server(42).name().to_string();
        let tags = a.server(42).tags();
        let env = tags[0].strip_prefix("env=").unwrap();
        let team = tags[1].strip_prefix("team=").unwrap();
        assert_eq!(name, format!("{env}-{team}-00042"));
    }

    #[test]
    fn every_env_and_team_occurs_in_a_thousand_servers() {
        let project = ProjectProfile::new(0, "p");
        let mut seen = std::collections::BTreeSet::new();
        for n in 0..1000 {
            let tags = project.server(n).tags();
            seen.insert(tags[0]);
            seen.insert(tags[1]);
        }
        assert_eq!(seen.len(), ENV_TAGS.len() + TEAM_TAGS.len(), "{seen:?}");
    }

    #[test]
    fn addresses_are_unique_and_host_ids_shared_per_host() {
        let project = ProjectProfile::new(3, "p");
        let ips: std::collections::HashSet<String> = (0..10_000)
            .map(|n| project.server(n).ip().to_string())
            .collect();
        assert_eq!(ips.len(), 10_000);
        assert_eq!(project.server(0).host_id().to_string().len(), 56);
        let host_id = |n: usize| project.server(n).host_id().to_string();
        assert_eq!(host_id(0), host_id(1));
        assert_ne!(host_id(0), host_id(SERVERS_PER_HOST));
    }
}
