//! Source NAT of balanced connections, shared by both implementations: a `postrouting` chain
//! in the balancer's table that rewrites the source of connections whose original destination
//! is one of the balancer's VIPs (set `snat_vips`) or whose packets carry one of its fwmarks
//! (set `snat_marks`). For IPVS this needs `net.ipv4.vs.conntrack=1`.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{json, Value};

use super::{Result, Snat, VirtualService};
use crate::netns::NetNs;
use crate::nft::{expr, Batch, Family, Hook, Nft};

pub(crate) const VIPS: &str = "snat_vips";
pub(crate) const MARKS: &str = "snat_marks";
pub(crate) const POSTROUTING: &str = "postrouting";

/// Adds the table, the two sets and the postrouting chain, and (re)writes the chain's rules:
/// idempotent, so it runs on every open.
pub(crate) fn base(b: &mut Batch, table: &str, snat: Option<Snat>) {
    b.add_table(Family::Ip, table)
        .add_set(Family::Ip, table, VIPS, json!("ipv4_addr"))
        .add_set(Family::Ip, table, MARKS, json!("mark"))
        .add_chain(
            Family::Ip,
            table,
            POSTROUTING,
            Some(&Hook::nat_postrouting()),
        )
        .flush_chain(Family::Ip, table, POSTROUTING);
    let Some(snat) = snat else { return };
    let action = || match snat {
        Snat::To(a) => expr::snat(a),
        Snat::Masquerade => expr::masquerade(),
    };
    b.add_rule(
        Family::Ip,
        table,
        POSTROUTING,
        vec![
            expr::eq(expr::ct_dir("ip daddr", "original"), expr::set_ref(VIPS)),
            expr::counter(),
            action(),
        ],
        None,
    );
    b.add_rule(
        Family::Ip,
        table,
        POSTROUTING,
        vec![
            expr::eq(expr::meta("mark"), expr::set_ref(MARKS)),
            expr::counter(),
            action(),
        ],
        None,
    );
}

/// The set and element that make `svc`'s connections SNATed.
pub(crate) fn element(svc: &VirtualService) -> (&'static str, Value) {
    match svc {
        VirtualService::Fwmark(m) => (MARKS, json!(m)),
        VirtualService::Addr { addr, .. } => (VIPS, json!(addr.to_string())),
    }
}

/// SNAT bookkeeping for a balancer whose DNAT is done elsewhere (IPVS): the services that are
/// SNATed. A set element is there while at least one of them needs it (a VIP shared by two
/// ports stays until both are gone), and adding a service twice changes nothing.
#[derive(Debug)]
pub(crate) struct SnatRules {
    nft: Nft,
    table: String,
    snat: Option<Snat>,
    services: tokio::sync::Mutex<BTreeSet<VirtualService>>,
}

fn needed(services: &BTreeSet<VirtualService>, elem: &Value) -> bool {
    services.iter().any(|s| element(s).1 == *elem)
}

impl SnatRules {
    /// Writes the table (see [`base`]) in `ns`. With `snat` = `None` nothing is written.
    pub(crate) async fn open(
        ns: Option<Arc<NetNs>>,
        table: &str,
        snat: Option<Snat>,
    ) -> Result<SnatRules> {
        let nft = Nft::new(ns);
        if snat.is_some() {
            let mut b = Batch::new();
            base(&mut b, table, snat);
            nft.apply(&b).await?;
        }
        Ok(SnatRules {
            nft,
            table: table.into(),
            snat,
            services: Default::default(),
        })
    }

    /// Makes the connections of `svcs` SNATed, in one transaction. Idempotent per service.
    pub(crate) async fn add(&self, svcs: &[VirtualService]) -> Result<()> {
        if self.snat.is_none() {
            return Ok(());
        }
        let mut services = self.services.lock().await;
        let mut next = services.clone();
        let mut b = Batch::new();
        for svc in svcs {
            let (set, elem) = element(svc);
            if !needed(&next, &elem) {
                b.add_element(Family::Ip, &self.table, set, vec![elem]);
            }
            next.insert(*svc);
        }
        self.nft.apply(&b).await?;
        *services = next;
        Ok(())
    }

    /// Undoes [`SnatRules::add`] for `svcs`, in one transaction. Unknown services are ignored.
    pub(crate) async fn remove(&self, svcs: &[VirtualService]) -> Result<()> {
        if self.snat.is_none() {
            return Ok(());
        }
        let mut services = self.services.lock().await;
        let mut next = services.clone();
        let mut b = Batch::new();
        for svc in svcs {
            if !next.remove(svc) {
                continue;
            }
            let (set, elem) = element(svc);
            if !needed(&next, &elem) {
                // `add element` first makes the delete succeed even if the element is gone.
                b.add_element(Family::Ip, &self.table, set, vec![elem.clone()])
                    .delete_element(Family::Ip, &self.table, set, vec![elem]);
            }
        }
        self.nft.apply(&b).await?;
        *services = next;
        Ok(())
    }

    /// Removes every element (and writes the table afresh).
    pub(crate) async fn flush(&self) -> Result<()> {
        let mut services = self.services.lock().await;
        self.nft.delete_table(Family::Ip, &self.table).await?;
        if self.snat.is_some() {
            let mut b = Batch::new();
            base(&mut b, &self.table, self.snat);
            self.nft.apply(&b).await?;
        }
        services.clear();
        Ok(())
    }
}
