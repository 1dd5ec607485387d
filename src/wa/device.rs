//! The name a companion registers under, written `Browser (OS)` like the reference clients
//! send it ("Chrome (Windows)"), and the pairs the server accepts. The client turns it into
//! `DeviceProps{os, platformType}` and the QR platform letter; the simulator checks a
//! registration against the same lists, so both sides share one definition.

use std::fmt;
use std::str::FromStr;

use crate::wa::proto::payload::PlatformType;

/// A browser a WhatsApp Web companion can claim to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Browser {
    Chrome,
    Firefox,
    Safari,
    Edge,
    Opera,
    Ie,
    Desktop,
}

/// Every browser, in the order the names are listed in error messages.
pub const BROWSERS: [Browser; 7] = [
    Browser::Chrome,
    Browser::Firefox,
    Browser::Safari,
    Browser::Edge,
    Browser::Opera,
    Browser::Ie,
    Browser::Desktop,
];

/// Operating systems the reference clients put in `DeviceProps.os` (Baileys' `Browsers`
/// helpers use "Ubuntu", "Mac OS" and "Windows"; whatsmeow's documentation "Linux").
pub const KNOWN_OS: [&str; 5] = ["Windows", "Mac OS", "Linux", "Ubuntu", "Chrome OS"];

impl Browser {
    pub fn name(self) -> &'static str {
        match self {
            Browser::Chrome => "Chrome",
            Browser::Firefox => "Firefox",
            Browser::Safari => "Safari",
            Browser::Edge => "Edge",
            Browser::Opera => "Opera",
            Browser::Ie => "IE",
            Browser::Desktop => "Desktop",
        }
    }

    /// `DeviceProps.platformType` for this browser.
    pub fn platform_type(self) -> PlatformType {
        match self {
            Browser::Chrome => PlatformType::Chrome,
            Browser::Firefox => PlatformType::Firefox,
            Browser::Safari => PlatformType::Safari,
            Browser::Edge => PlatformType::Edge,
            Browser::Opera => PlatformType::Opera,
            Browser::Ie => PlatformType::Ie,
            Browser::Desktop => PlatformType::Desktop,
        }
    }

    /// The one-character web client type at the end of the QR text (PROTOCOL.md section 4).
    pub fn qr_platform(self) -> char {
        match self {
            Browser::Chrome => '1',
            Browser::Edge => '2',
            Browser::Firefox => '3',
            Browser::Ie => '4',
            Browser::Opera => '5',
            Browser::Safari => '6',
            Browser::Desktop => '9',
        }
    }

    fn from_platform_type(value: i32) -> Option<Browser> {
        BROWSERS
            .into_iter()
            .find(|b| b.platform_type() as i32 == value)
    }
}

/// `Browser (OS)`, e.g. "Chrome (Windows)".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceName {
    pub browser: Browser,
    pub os: &'static str,
}

impl Default for DeviceName {
    /// The most common desktop pair, so a wasp fleet looks like ordinary WhatsApp Web.
    fn default() -> Self {
        DeviceName {
            browser: Browser::Chrome,
            os: "Windows",
        }
    }
}

impl fmt::Display for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.browser.name(), self.os)
    }
}

/// Why a device name was refused; the message lists what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceNameError {
    #[error("{0:?} is not of the form \"Browser (OS)\", e.g. \"Chrome (Windows)\"")]
    Form(String),
    #[error("unknown browser {0:?}; one of {list}", list = browser_list())]
    Browser(String),
    #[error("unknown operating system {0:?}; one of {list}", list = KNOWN_OS.join(", "))]
    Os(String),
}

fn browser_list() -> String {
    BROWSERS.map(Browser::name).join(", ")
}

impl FromStr for DeviceName {
    type Err = DeviceNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let form = || DeviceNameError::Form(s.to_string());
        let (browser, rest) = s.split_once(" (").ok_or_else(form)?;
        let os = rest.strip_suffix(')').ok_or_else(form)?;
        let browser = BROWSERS
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(browser.trim()))
            .ok_or_else(|| DeviceNameError::Browser(browser.to_string()))?;
        let os = KNOWN_OS
            .into_iter()
            .find(|k| k.eq_ignore_ascii_case(os.trim()))
            .ok_or_else(|| DeviceNameError::Os(os.to_string()))?;
        Ok(DeviceName { browser, os })
    }
}

/// What the server accepts in a registration's `DeviceProps`: a known OS and a browser
/// platform type. Returns the pair as a `DeviceName` when accepted.
pub fn accepted(os: Option<&str>, platform_type: Option<i32>) -> Option<DeviceName> {
    let os = KNOWN_OS.into_iter().find(|k| Some(*k) == os)?;
    let browser = Browser::from_platform_type(platform_type?)?;
    Some(DeviceName { browser, os })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_map_to_the_wire() {
        let name: DeviceName = "Firefox (Mac OS)".parse().unwrap();
        assert_eq!(name.to_string(), "Firefox (Mac OS)");
        assert_eq!(name.browser.platform_type(), PlatformType::Firefox);
        assert_eq!(name.browser.qr_platform(), '3');
        assert_eq!(
            accepted(Some("Mac OS"), Some(PlatformType::Firefox as i32)),
            Some(name)
        );
        assert_eq!(DeviceName::default().to_string(), "Chrome (Windows)");
    }

    #[test]
    fn odd_names_are_refused_with_the_choices() {
        assert!(matches!(
            "wasp".parse::<DeviceName>(),
            Err(DeviceNameError::Form(_))
        ));
        let err = "Lynx (Linux)".parse::<DeviceName>().unwrap_err();
        assert!(err.to_string().contains("Chrome, Firefox"), "{err}");
        assert!(matches!(
            "Chrome (Plan9)".parse::<DeviceName>(),
            Err(DeviceNameError::Os(_))
        ));
        assert_eq!(
            accepted(Some("wasp"), Some(PlatformType::Desktop as i32)),
            None
        );
        assert_eq!(
            accepted(Some("Linux"), Some(PlatformType::Unknown as i32)),
            None
        );
    }
}
