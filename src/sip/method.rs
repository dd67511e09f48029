//! Request methods. The ones the proxy treats specially are variants; any
//! other `token` is an extension method, proxied like OPTIONS (RFC 3261 §16).

use std::fmt;

/// A request method. Methods are case-sensitive (RFC 3261 §7.1), so
/// `invite` is an extension method, not INVITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Info,
    Update,
    Prack,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    /// Any other method; its text is in the request line.
    Extension,
}

impl Method {
    /// Recognises a standard method name; anything else is [`Method::Extension`].
    pub fn from_token(s: &str) -> Method {
        use Method::*;
        match s {
            "INVITE" => Invite,
            "ACK" => Ack,
            "BYE" => Bye,
            "CANCEL" => Cancel,
            "REGISTER" => Register,
            "OPTIONS" => Options,
            "INFO" => Info,
            "UPDATE" => Update,
            "PRACK" => Prack,
            "SUBSCRIBE" => Subscribe,
            "NOTIFY" => Notify,
            "REFER" => Refer,
            "MESSAGE" => Message,
            "PUBLISH" => Publish,
            _ => Extension,
        }
    }

    /// A bit of its own for each standard method, 0 for an extension
    /// method: sets of methods (`is_method("INVITE|BYE")`) as masks.
    pub fn bit(self) -> u32 {
        match self {
            Method::Extension => 0,
            m => 1 << (m as u32),
        }
    }

    /// The method's name, or `None` for an extension method.
    pub fn as_str(self) -> Option<&'static str> {
        use Method::*;
        Some(match self {
            Invite => "INVITE",
            Ack => "ACK",
            Bye => "BYE",
            Cancel => "CANCEL",
            Register => "REGISTER",
            Options => "OPTIONS",
            Info => "INFO",
            Update => "UPDATE",
            Prack => "PRACK",
            Subscribe => "SUBSCRIBE",
            Notify => "NOTIFY",
            Refer => "REFER",
            Message => "MESSAGE",
            Publish => "PUBLISH",
            Extension => return None,
        })
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str().unwrap_or("<extension>"))
    }
}
