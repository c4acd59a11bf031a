//! The public catalogue's view: one item per product in the state table's
//! `catalog` partition (sort key: the sku), holding the product's
//! [`ProductView`], written **in the same transaction as every event of the
//! product's stream** (by the API's product commands and by the inventory
//! handler's reservations, releases and commits). So `GET /products` is one
//! `Query` page, never a fold of every product, and it is never behind the
//! event store. Catalogue items written before the view existed hold `{}`
//! and are read from the aggregate instead ([`read`] gives `None`).

use serde::{Deserialize, Serialize};
use storefront_domain::product::ProductState;
use storefront_store::keys::CATALOG;
use storefront_store::{Condition, StateItem, StateWrite};
use utoipa::ToSchema;

/// A catalogue entry with its stock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductView {
    /// Stock-keeping unit.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Unit price in minor units.
    pub price_cents: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Units on hand.
    pub on_hand: u32,
    /// Units reserved for orders.
    pub reserved: u32,
    /// On hand minus reserved.
    pub available_stock: u32,
    /// `active` or `discontinued`.
    pub status: String,
    /// Stream version.
    pub version: u64,
}

impl ProductView {
    /// The view of a product that exists.
    pub fn of(p: &ProductState) -> Option<Self> {
        Some(ProductView {
            sku: p.sku.as_ref()?.to_string(),
            name: p.name.clone(),
            price_cents: p.price_cents,
            currency: p
                .currency
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_default(),
            on_hand: p.on_hand,
            reserved: p.reserved,
            available_stock: p.available(),
            status: if p.discontinued {
                "discontinued"
            } else {
                "active"
            }
            .into(),
            version: p.version,
        })
    }
}

/// The catalogue item of `product` as of its version, to write with the
/// events that brought it there (nothing for a product that does not exist).
pub fn entry(product: &ProductState) -> Vec<StateWrite> {
    let Some(view) = ProductView::of(product) else {
        return vec![];
    };
    let Ok(value) = serde_json::to_value(&view) else {
        return vec![];
    };
    vec![StateWrite {
        item: StateItem {
            pk: CATALOG.into(),
            sk: view.sku,
            version: product.version,
            value,
            expires_at: None,
        },
        // The append's own condition orders the writers: each product's
        // events commit one version at a time, and this item with them.
        condition: Condition::Always,
    }]
}

/// The view a catalogue item holds (`None`: an item from before the view).
pub fn read(item: &StateItem) -> Option<ProductView> {
    serde_json::from_value(item.value.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use storefront_domain::product::ProductCommand;
    use storefront_domain::{Aggregate, Currency, Sku};

    /// An entry holds the product's view at its version, and reads back as it.
    #[test]
    fn entry_reads_back() {
        let created = ProductState::default()
            .decide(&ProductCommand::Create {
                sku: Sku::new("MUG").expect("sku"),
                name: "Mug".into(),
                price_cents: 1200,
                currency: Currency::new("EUR").expect("currency"),
                stock: 7,
            })
            .expect("create");
        let product = created
            .iter()
            .fold(ProductState::default(), |p, e| p.evolve(e));
        let writes = entry(&product);
        assert_eq!(writes.len(), 1);
        let item = &writes[0].item;
        assert_eq!((item.pk.as_str(), item.sk.as_str()), (CATALOG, "MUG"));
        assert_eq!(item.version, product.version);
        let view = read(item).expect("a view");
        assert_eq!(Some(view), ProductView::of(&product));
        assert_eq!(
            read(&StateItem {
                value: serde_json::json!({}),
                ..item.clone()
            }),
            None
        );
        assert!(
            entry(&ProductState::default()).is_empty(),
            "no product, no entry"
        );
    }
}
