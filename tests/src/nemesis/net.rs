//! Network partitions on this machine only: each broker runs in a network namespace of its own,
//! joined to the host by a veth pair (`10.X.K.0/30`: host side `.1`, broker side `.2`), and the
//! private ZooKeeper and Redis listen on two addresses added to the host's loopback interface
//! (`10.X.0.1`, `10.X.0.2`; the kernel here has no dummy interfaces) that each namespace reaches
//! through its veth. Cutting broker K off
//! ZooKeeper or Redis is an iptables DROP of that address inside K's namespace (both directions),
//! so packets vanish as in a real partition; the test itself still reaches every broker.
//!
//! Traffic stays between these namespaces and the host's own addresses: no route leads anywhere
//! else. Names carry a random id, so concurrent runs never meet, and everything is deleted when
//! the [`Network`] is dropped, panics included.

use std::process::Command;

use crate::util::random_suffix;

/// What a partition cuts a broker off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    ZooKeeper,
    Redis,
}

/// The namespaces, links and addresses of one run; removed on drop.
#[derive(Debug)]
pub struct Network {
    /// The second octet of every address: `10.X.*`.
    x: u8,
    /// The service addresses added to `lo`.
    added: Vec<String>,
    /// Per broker: (namespace, host-side veth).
    nodes: Vec<(String, String)>,
}

impl Network {
    /// Adds the service addresses and makes one namespace per broker. Fails (cleaning up what it made)
    /// when the process may not, e.g. without root.
    pub fn create(brokers: usize) -> Result<Self, String> {
        let id = random_suffix(5);
        let x = free_octet()?;
        let mut net = Network { x, added: Vec::new(), nodes: Vec::new() };
        for host in [net.zk_host(), net.redis_host()] {
            let address = format!("{host}/32");
            run("ip", &["addr", "add", &address, "dev", "lo"])?;
            net.added.push(address);
        }
        for k in 0..brokers {
            let ns = format!("mom-nem-{id}-{}", k + 1);
            let (outer, inner) = (format!("mnh{id}{k}"), format!("mnn{id}{k}"));
            run("ip", &["netns", "add", &ns])?;
            net.nodes.push((ns.clone(), outer.clone()));
            run("ip", &["link", "add", &outer, "type", "veth", "peer", "name", &inner, "netns", &ns])?;
            let (gateway, broker) = (net.gateway(k), net.broker_host(k));
            run("ip", &["addr", "add", &format!("{gateway}/30"), "dev", &outer])?;
            run("ip", &["link", "set", &outer, "up"])?;
            run("ip", &["-n", &ns, "addr", "add", &format!("{broker}/30"), "dev", &inner])?;
            run("ip", &["-n", &ns, "link", "set", &inner, "up"])?;
            run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
            // Only the services' /24, through the host: nothing else is routable from inside.
            run("ip", &["-n", &ns, "route", "add", &format!("10.{x}.0.0/24"), "via", &gateway])?;
        }
        Ok(net)
    }

    /// The address ZooKeeper's client ports listen on.
    pub fn zk_host(&self) -> String {
        format!("10.{}.0.1", self.x)
    }

    /// The address Redis listens on (besides 127.0.0.1).
    pub fn redis_host(&self) -> String {
        format!("10.{}.0.2", self.x)
    }

    /// Broker `k`'s address inside its namespace (it listens there; the test connects there).
    pub fn broker_host(&self, k: usize) -> String {
        format!("10.{}.{}.2", self.x, k + 1)
    }

    fn gateway(&self, k: usize) -> String {
        format!("10.{}.{}.1", self.x, k + 1)
    }

    /// The command that runs a program in broker `k`'s namespace.
    pub fn wrapper(&self, k: usize) -> Vec<String> {
        vec!["ip".into(), "netns".into(), "exec".into(), self.nodes[k].0.clone()]
    }

    fn host_of(&self, service: Service) -> String {
        match service {
            Service::ZooKeeper => self.zk_host(),
            Service::Redis => self.redis_host(),
        }
    }

    /// Drops every packet between broker `k` and `service`, both ways.
    pub fn cut(&self, k: usize, service: Service) -> Result<(), String> {
        self.rules(k, service, "-A")
    }

    /// Undoes [`Network::cut`].
    pub fn heal(&self, k: usize, service: Service) -> Result<(), String> {
        self.rules(k, service, "-D")
    }

    fn rules(&self, k: usize, service: Service, action: &str) -> Result<(), String> {
        let ns = &self.nodes[k].0;
        let host = self.host_of(service);
        for (chain, dir) in [("OUTPUT", "-d"), ("INPUT", "-s")] {
            run("ip", &["netns", "exec", ns, "iptables", "-w", action, chain, dir, &host, "-j", "DROP"])?;
        }
        Ok(())
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // Best effort: deleting the host side of a veth deletes the pair.
        for (ns, outer) in &self.nodes {
            let _ = run("ip", &["link", "del", outer]);
            let _ = run("ip", &["netns", "del", ns]);
        }
        for address in &self.added {
            let _ = run("ip", &["addr", "del", address, "dev", "lo"]);
        }
    }
}

/// An X for `10.X.0.0/16` that no address or route of this machine uses yet.
fn free_octet() -> Result<u8, String> {
    let mut used = output("ip", &["-4", "-o", "addr"])?;
    used.push_str(&output("ip", &["-4", "route", "show", "table", "all"])?);
    for _ in 0..50 {
        let x: u8 = rand::random_range(100..=250);
        if !used.contains(&format!("10.{x}.")) {
            return Ok(x);
        }
    }
    Err("no free 10.X.0.0/16 for the test network".into())
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    output(program, args).map(drop)
}

fn output(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program} {}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
