//! The sender's side of a decryption failure (issue 32, `doctor --sent`):
//! for one of this device's Megolm sessions and one device of the room,
//! whether that device can read the messages sent with it, why not, and
//! what would make the next ones readable.
//!
//! A Megolm session reaches a device only as its sender shares it, from the
//! session's index at the time (R4, R6). matrix-sdk gives the current
//! session to each device the first time a send finds it without it, and
//! answers key requests only from devices it already gave the session to.
//! So what a device missed stays missed on the sender's side: the messages
//! already sent can still reach it only from its owner's other devices or
//! key backup. What the sender can do is make the next message readable.

use super::rotation::SharedWith;

/// What is known of one device, for one session.
#[derive(Debug, Clone, Default)]
pub(crate) struct Facts<'a> {
    /// The indexes of this device's messages examined in the session.
    pub(crate) indexes: &'a [u32],
    /// Whether ratchet has a sharing record for the session.
    pub(crate) recorded: bool,
    /// The device's entry in that record.
    pub(crate) share: Option<&'a SharedWith>,
    /// The user was among those the session was shared with.
    pub(crate) member_then: bool,
    /// Another device of the user's is in the record.
    pub(crate) user_had_devices: bool,
    /// The user's server did not answer a key query or claim at a share.
    pub(crate) server_unreachable: bool,
    /// The device is in the room now (its owner a member, the device not
    /// deleted).
    pub(crate) present: bool,
    /// Now: cross-signed by its owner; blacklisted here.
    pub(crate) cross_signed: bool,
    pub(crate) blacklisted: bool,
    /// The device belongs to this account.
    pub(crate) own: bool,
    /// This device has no Olm session with it now (`None`: not looked).
    pub(crate) no_olm_session: bool,
}

/// What would make the next messages readable to the device, as commands
/// (the command layer writes them out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Remedy {
    /// `trust USER DEVICE unset`
    Unblacklist,
    /// `rotate ROOM --share`: a new session, given to the device now.
    RotateShare,
    /// `verify --self DEVICE`: cross-sign a device of this account.
    VerifyOwn,
}

/// The answer for one device and one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Delivery {
    /// A stable name (README, "doctor --sent").
    pub(crate) cause: &'static str,
    /// Whether the device can read every examined message; `None`: unknown.
    pub(crate) can_read: Option<bool>,
    /// The examined indexes it cannot read.
    pub(crate) unreadable: Vec<u32>,
    pub(crate) explanation: String,
    pub(crate) remedies: Vec<Remedy>,
    /// Why nothing on this side makes the messages already sent readable.
    pub(crate) past: Option<&'static str>,
}

/// For the messages already sent, when the device missed them.
pub(crate) const PAST: &str = "the messages already sent stay unreadable to it from this side: a sender gives a \
     Megolm session from its current index only, and answers key requests only from devices it gave the session to; \
     its owner's other devices or key backup may still have the key";

/// The same, for a device of this account: matrix-sdk answers a key
/// request from the account's own verified devices with the whole session.
pub(crate) const PAST_OWN: &str = "the messages already sent can still reach it: once it is verified, a key request \
     from it (`keys request` there) is answered by this device with the session";

pub(crate) fn diagnose(f: &Facts<'_>) -> Delivery {
    let all: Vec<u32> = f.indexes.to_vec();
    let past = if f.own { PAST_OWN } else { PAST };
    let missed = |cause, explanation: String, remedies: Vec<Remedy>| Delivery {
        cause,
        can_read: Some(false),
        unreadable: all.clone(),
        explanation,
        remedies,
        past: Some(past),
    };
    // A device that can receive keys now gets the next message's session
    // by itself; `rotate --share` gives it one before that message.
    let share_now = if f.present { vec![Remedy::RotateShare] } else { Vec::new() };
    if !f.recorded {
        return Delivery {
            cause: "no_record",
            can_read: None,
            unreadable: Vec::new(),
            explanation: "ratchet has no record of whom this session was given to: it was shared before ratchet kept \
                          these records, or more than 1000 sessions ago"
                .into(),
            remedies: Vec::new(),
            past: None,
        };
    }
    match f.share {
        Some(SharedWith { message_index: Some(from), withheld: first, .. }) => {
            let unreadable: Vec<u32> = all.iter().copied().filter(|i| i < from).collect();
            if unreadable.is_empty() {
                Delivery {
                    cause: "given",
                    can_read: Some(true),
                    unreadable,
                    explanation: format!(
                        "it was given this session from index {from}: it can decrypt these messages (if it cannot, \
                         the key did not arrive or was lost on its side: `doctor` there says which)"
                    ),
                    remedies: Vec::new(),
                    past: None,
                }
            } else {
                let why = match first.as_deref() {
                    Some("m.no_olm") => format!(
                        "no Olm session could be made with it when they were sent (m.no_olm{}), and it was given \
                         the session only later",
                        if f.server_unreachable { ": its server did not answer" } else { ": no one-time key left" }
                    ),
                    Some(code) => format!(
                        "it was withheld ({}) when they were sent, and given the session only later",
                        crate::ui::terminal::inert(code)
                    ),
                    None if f.server_unreachable => {
                        "its server did not answer when they were sent (no Olm session could be made with it then)"
                            .to_owned()
                    }
                    None => {
                        "it (or its owner) joined the room, or the device appeared, after they were sent".to_owned()
                    }
                };
                Delivery {
                    cause: "given_after",
                    can_read: Some(false),
                    explanation: format!(
                        "it was given this session only from index {from}, after {} of these messages: {why}; what \
                         follows it reads",
                        unreadable.len()
                    ),
                    unreadable,
                    remedies: Vec::new(),
                    past: Some(past),
                }
            }
        }
        Some(SharedWith { withheld: code, .. }) => {
            let code = code.as_deref().unwrap_or("");
            match code {
                "m.blacklisted" => {
                    let mut remedies = Vec::new();
                    if f.blacklisted {
                        remedies.push(Remedy::Unblacklist);
                    }
                    remedies.extend(share_now);
                    let now = if f.blacklisted { "it still is" } else { "it is not any more" };
                    missed(
                        "withheld_blacklisted",
                        format!("withheld (m.blacklisted): this profile blacklisted the device ({now})"),
                        remedies,
                    )
                }
                "m.unverified" if f.cross_signed => missed(
                    "withheld_unverified",
                    "withheld (m.unverified): the device was not cross-signed by its owner then (device isolation, \
                     MSC4153); it is now, so the next message reaches it"
                        .into(),
                    share_now,
                ),
                "m.unverified" if f.own => missed(
                    "withheld_unverified",
                    "withheld (m.unverified): this device of yours is not cross-signed (device isolation, MSC4153): \
                     verify it, and the next message reaches it"
                        .into(),
                    vec![Remedy::VerifyOwn],
                ),
                "m.unverified" => missed(
                    "withheld_unverified",
                    "withheld (m.unverified): its owner has not cross-signed it (device isolation, MSC4153). Only \
                     they can: by verifying it from another of their devices (in Element, \"Verify this session\"); \
                     the next message then reaches it. Sending with --isolation all-devices would give it the key \
                     and forgo that protection"
                        .into(),
                    Vec::new(),
                ),
                "m.no_olm" => missed(
                    "withheld_no_olm",
                    format!(
                        "withheld (m.no_olm): no Olm session could be made with it to carry the key: {}",
                        if f.server_unreachable {
                            "its server did not answer the claim for one of its one-time keys"
                        } else {
                            "it had no one-time key left"
                        }
                    ),
                    share_now,
                ),
                other => missed(
                    "withheld",
                    format!("withheld ({}) by this device's crypto", crate::ui::terminal::inert(other)),
                    share_now,
                ),
            }
        }
        // Not a failure: who joins later is not meant to read what came
        // before (unless history shared on invite, MSC4268, gave it).
        None if !f.member_then => Delivery {
            cause: "not_a_member_then",
            can_read: None,
            unreadable: Vec::new(),
            explanation: "its owner was not among those the session was shared with: they joined (or were invited) \
                          after these messages, or the room's history visibility kept them out; history shared on \
                          invite (MSC4268) may have given them the key"
                .into(),
            remedies: Vec::new(),
            past: None,
        },
        None if !f.user_had_devices && f.server_unreachable => missed(
            "server_unreachable_then",
            "no device of its owner was known when the session was shared: their server did not answer the key \
             query; the next message reaches it once the server answers"
                .into(),
            share_now,
        ),
        None if !f.user_had_devices => missed(
            "no_device_then",
            "no device of its owner was known when the session was shared (they had none logged in, or their \
             server did not answer)"
                .into(),
            share_now,
        ),
        // matrix-sdk says m.no_olm once per device, not in every session.
        None if f.no_olm_session => missed(
            "no_olm_session",
            "this device has no Olm session with it to carry room keys: it had no one-time key left (it was told \
             m.no_olm once, in an earlier session), or its server did not answer"
                .into(),
            share_now,
        ),
        None => missed(
            "device_new",
            "the device was not known when the session was shared: it logged in after these messages; the next \
             message reaches it"
                .into(),
            share_now,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(from: u32) -> SharedWith {
        SharedWith { user_id: "@b:x".into(), device_id: "D".into(), message_index: Some(from), withheld: None }
    }
    fn withheld(code: &str) -> SharedWith {
        SharedWith { user_id: "@b:x".into(), device_id: "D".into(), message_index: None, withheld: Some(code.into()) }
    }
    fn facts<'a>(indexes: &'a [u32], share: Option<&'a SharedWith>) -> Facts<'a> {
        Facts {
            indexes,
            recorded: true,
            share,
            member_then: true,
            user_had_devices: true,
            present: true,
            ..Default::default()
        }
    }

    #[test]
    fn given_from_an_index_reads_what_follows_it() {
        let g = given(2);
        let d = diagnose(&facts(&[2, 3], Some(&g)));
        assert_eq!((d.cause, d.can_read, d.past), ("given", Some(true), None));
        let d = diagnose(&facts(&[0, 1, 2], Some(&g)));
        assert_eq!((d.cause, d.can_read, d.unreadable), ("given_after", Some(false), vec![0, 1]));
        let first_withheld = SharedWith { withheld: Some("m.blacklisted".into()), ..given(2) };
        let d = diagnose(&facts(&[0], Some(&first_withheld)));
        assert!(d.explanation.contains("withheld (m.blacklisted) when they were sent"), "{}", d.explanation);
        assert_eq!(d.past, Some(PAST));
        assert!(d.remedies.is_empty(), "it has the session: the next message reaches it");
    }

    #[test]
    fn withheld_codes_name_their_remedy() {
        let b = withheld("m.blacklisted");
        let d = diagnose(&Facts { blacklisted: true, ..facts(&[0], Some(&b)) });
        assert_eq!(d.cause, "withheld_blacklisted");
        assert_eq!(d.remedies, [Remedy::Unblacklist, Remedy::RotateShare]);
        let d = diagnose(&facts(&[0], Some(&b)));
        assert_eq!(d.remedies, [Remedy::RotateShare], "unblacklisted since");

        let u = withheld("m.unverified");
        let d = diagnose(&facts(&[0], Some(&u)));
        assert_eq!((d.cause, d.remedies.len()), ("withheld_unverified", 0), "only its owner can");
        let d = diagnose(&Facts { cross_signed: true, ..facts(&[0], Some(&u)) });
        assert_eq!(d.remedies, [Remedy::RotateShare]);
        let d = diagnose(&Facts { own: true, ..facts(&[0], Some(&u)) });
        assert_eq!(d.remedies, [Remedy::VerifyOwn]);

        let n = withheld("m.no_olm");
        let d = diagnose(&facts(&[0], Some(&n)));
        assert_eq!((d.cause, d.remedies.as_slice()), ("withheld_no_olm", [Remedy::RotateShare].as_slice()));
        let d = diagnose(&Facts { present: false, ..facts(&[0], Some(&n)) });
        assert!(d.remedies.is_empty(), "a device gone from the room gets nothing");
    }

    #[test]
    fn devices_missing_from_the_record_say_why() {
        let d = diagnose(&Facts { member_then: false, ..facts(&[0], None) });
        assert_eq!((d.cause, d.can_read), ("not_a_member_then", None), "not a failure");
        let d = diagnose(&Facts { no_olm_session: true, ..facts(&[0], None) });
        assert_eq!(d.cause, "no_olm_session");
        let d = diagnose(&Facts { own: true, ..facts(&[0], None) });
        assert_eq!(d.past, Some(PAST_OWN), "a key request from an own device is answered");
        let d = diagnose(&Facts { user_had_devices: false, server_unreachable: true, ..facts(&[0], None) });
        assert_eq!((d.cause, d.remedies.as_slice()), ("server_unreachable_then", [Remedy::RotateShare].as_slice()));
        let d = diagnose(&Facts { user_had_devices: false, ..facts(&[0], None) });
        assert_eq!(d.cause, "no_device_then");
        let d = diagnose(&facts(&[0], None));
        assert_eq!((d.cause, d.can_read), ("device_new", Some(false)));
        let d = diagnose(&Facts { recorded: false, ..facts(&[0], None) });
        assert_eq!((d.cause, d.can_read), ("no_record", None));
    }
}
