//! Source NAT of balanced connections, shared by both implementations: a `postrouting` chain
//! in the balancer's table that rewrites the source of connections whose original destination
//! is one of the balancer's VIPs (set `snat_vips`) or whose packets carry one of its fwmarks
//! (set `snat_marks`). For IPVS this needs `net.ipv4.vs.conntrack=1`.

use std::collections::HashMap;
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

/// SNAT bookkeeping for a balancer whose DNAT is done elsewhere (IPVS): counts the services
/// that need each set element, so a VIP shared by two ports stays until both are gone.
#[derive(Debug)]
pub(crate) struct SnatRules {
    nft: Nft,
    table: String,
    snat: Option<Snat>,
    users: tokio::sync::Mutex<HashMap<(String, String), usize>>,
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
            users: Default::default(),
        })
    }

    /// Makes `svc`'s connections SNATed (idempotent per service: call once per service).
    pub(crate) async fn add(&self, svc: &VirtualService) -> Result<()> {
        self.add_many(std::slice::from_ref(svc)).await
    }

    /// [`SnatRules::add`] for many services, in one transaction.
    pub(crate) async fn add_many(&self, svcs: &[VirtualService]) -> Result<()> {
        if self.snat.is_none() || svcs.is_empty() {
            return Ok(());
        }
        let mut users = self.users.lock().await;
        let mut b = Batch::new();
        for svc in svcs {
            let (set, elem) = element(svc);
            let n = users
                .entry((set.to_string(), elem.to_string()))
                .or_insert(0);
            *n += 1;
            if *n == 1 {
                b.add_element(Family::Ip, &self.table, set, vec![elem]);
            }
        }
        if let Err(e) = self.nft.apply(&b).await {
            for svc in svcs {
                let (set, elem) = element(svc);
                if let Some(n) = users.get_mut(&(set.to_string(), elem.to_string())) {
                    *n -= 1;
                }
            }
            users.retain(|_, n| *n > 0);
            return Err(e.into());
        }
        Ok(())
    }

    /// Undoes [`SnatRules::add`] for `svc`.
    pub(crate) async fn remove(&self, svc: &VirtualService) -> Result<()> {
        self.remove_many(std::slice::from_ref(svc)).await
    }

    /// [`SnatRules::remove`] for many services, in one transaction.
    pub(crate) async fn remove_many(&self, svcs: &[VirtualService]) -> Result<()> {
        if self.snat.is_none() || svcs.is_empty() {
            return Ok(());
        }
        let mut users = self.users.lock().await;
        let mut b = Batch::new();
        for svc in svcs {
            let (set, elem) = element(svc);
            let key = (set.to_string(), elem.to_string());
            let Some(n) = users.get_mut(&key) else {
                continue;
            };
            *n -= 1;
            if *n == 0 {
                users.remove(&key);
                // `add element` first makes the delete succeed even if the element is gone.
                b.add_element(Family::Ip, &self.table, set, vec![elem.clone()])
                    .delete_element(Family::Ip, &self.table, set, vec![elem]);
            }
        }
        self.nft.apply(&b).await?;
        Ok(())
    }

    /// Removes the table.
    pub(crate) async fn flush(&self) -> Result<()> {
        self.users.lock().await.clear();
        self.nft.delete_table(Family::Ip, &self.table).await?;
        if self.snat.is_some() {
            let mut b = Batch::new();
            base(&mut b, &self.table, self.snat);
            self.nft.apply(&b).await?;
        }
        Ok(())
    }
}
