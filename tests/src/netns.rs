//! A network namespace joined to the test's own by a veth pair, to run a process as if on
//! another host and cut it off with `tc` (a network partition: packets silently dropped both
//! ways, connections hang rather than fail, as when a switch or a link dies).
//!
//! Made with the `ip` and `tc` programs (iproute2), so it needs root (or `CAP_NET_ADMIN`) and
//! the kernel's `veth` and `sch_netem` modules; [`Link::create`] says which is missing. The
//! addresses are `10.213.{n}.1` (host end) and `10.213.{n}.2` (namespace end), `n` taken from
//! the process id, so two test processes do not collide; the namespace and the pair are
//! deleted on drop. Traffic stays on the machine.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

/// A namespace and the veth pair that joins it to the test's namespace.
#[derive(Debug)]
pub struct Link {
    ns: String,
    host_if: String,
    ns_if: String,
    /// The host end's address (the test's side).
    pub host_ip: Ipv4Addr,
    /// The namespace end's address.
    pub ns_ip: Ipv4Addr,
}

/// Runs `program args` and fails with its stderr when it does not succeed.
fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program).args(args).output().map_err(|e| {
        anyhow::anyhow!("cannot run {program} (iproute2; Debian package iproute2): {e}")
    })?;
    anyhow::ensure!(
        out.status.success(),
        "{program} {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

impl Link {
    /// Creates the namespace `dsp{pid}`, a veth pair between it and this namespace, addresses
    /// both ends (a /30) and brings both up, with loopback in the namespace.
    ///
    /// Errors: `ip` missing, not root, or the kernel refusing (the message is `ip`'s own).
    pub fn create() -> anyhow::Result<Self> {
        let pid = std::process::id();
        let n = u8::try_from(pid % 250).unwrap_or(0) + 1;
        let link = Self {
            ns: format!("dsp{pid}"),
            host_if: format!("dh{pid}"),
            ns_if: format!("dn{pid}"),
            host_ip: Ipv4Addr::new(10, 213, n, 1),
            ns_ip: Ipv4Addr::new(10, 213, n, 2),
        };
        // A namespace left by a killed run of the same pid would make `add` fail.
        let _ = Command::new("ip").args(["netns", "del", &link.ns]).output();
        run("ip", &["netns", "add", &link.ns])?;
        // From here on, drop deletes the namespace (and with it the pair).
        let (ns, h, i) = (&link.ns, &link.host_if, &link.ns_if);
        run(
            "ip",
            &[
                "link", "add", h, "type", "veth", "peer", "name", i, "netns", ns,
            ],
        )?;
        let host_cidr = format!("{}/30", link.host_ip);
        let ns_cidr = format!("{}/30", link.ns_ip);
        run("ip", &["addr", "add", &host_cidr, "dev", h])?;
        run("ip", &["link", "set", h, "up"])?;
        run(
            "ip",
            &["-n", ns, "addr", "add", ns_cidr.as_str(), "dev", i.as_str()],
        )?;
        run("ip", &["-n", ns, "link", "set", i, "up"])?;
        run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        Ok(link)
    }

    /// A command that runs `program` inside the namespace (`ip netns exec`, which execs it: the
    /// child's pid is the program's).
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns]).arg(program);
        cmd
    }

    /// Cuts the link: every packet either way is dropped, silently, at both ends' root qdisc:
    /// `netem loss 100%` where the kernel has `sch_netem`, else a token bucket (`tbf`) whose
    /// bucket of 1 byte is smaller than any packet, so each is dropped (a kernel without netem
    /// answers "Specified qdisc kind is unknown"; this machine's does). Answers which was used.
    ///
    /// Errors: `tc` missing, or neither qdisc available (`tc`'s message).
    pub fn partition(&mut self) -> anyhow::Result<&'static str> {
        const NETEM: [&str; 4] = ["netem", "loss", "100%", ""];
        const TBF: [&str; 7] = ["tbf", "rate", "8bit", "burst", "1", "latency", "1ms"];
        let cut = |qdisc: &[&str]| -> anyhow::Result<()> {
            let qdisc: Vec<&str> = qdisc.iter().copied().filter(|a| !a.is_empty()).collect();
            let mut host = vec!["qdisc", "add", "dev", self.host_if.as_str(), "root"];
            host.extend(&qdisc);
            run("tc", &host)?;
            let mut inner = vec!["-n", self.ns.as_str(), "qdisc", "add", "dev", &self.ns_if];
            inner.push("root");
            inner.extend(&qdisc);
            run("tc", &inner)
        };
        let used = match cut(&NETEM) {
            Ok(()) => "netem loss 100%",
            Err(_) => {
                // Half applied (say, the host end): clear both before the other qdisc.
                let _ = self.clear();
                cut(&TBF)?;
                "tbf with a 1-byte bucket"
            }
        };
        Ok(used)
    }

    /// Removes the root qdisc of both ends (each may be absent).
    fn clear(&self) -> anyhow::Result<()> {
        let host = run("tc", &["qdisc", "del", "dev", &self.host_if, "root"]);
        let inner = run(
            "tc",
            &["-n", &self.ns, "qdisc", "del", "dev", &self.ns_if, "root"],
        );
        host.and(inner)
    }

    /// Restores the link (removes the qdiscs [`Link::partition`] added).
    ///
    /// Errors: `tc`'s.
    pub fn heal(&mut self) -> anyhow::Result<()> {
        self.clear()?;
        Ok(())
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and with it the host end.
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}
