//! SMPP command_status names (SMPP 3.4 and 5.0).

/// The SMPP name of a command_status (e.g. `ESME_RTHROTTLED` for 0x58), or `0x…` in hex when it
/// has none (vendor-specific codes).
///
/// ```
/// assert_eq!(smsgw_smpp::status_name(0x58), "ESME_RTHROTTLED");
/// assert_eq!(smsgw_smpp::status_name(0x400), "0x00000400");
/// ```
pub fn status_name(status: u32) -> String {
    let name = match status {
        0x0 => "ESME_ROK",
        0x1 => "ESME_RINVMSGLEN",
        0x2 => "ESME_RINVCMDLEN",
        0x3 => "ESME_RINVCMDID",
        0x4 => "ESME_RINVBNDSTS",
        0x5 => "ESME_RALYBND",
        0x6 => "ESME_RINVPRTFLG",
        0x7 => "ESME_RINVREGDLVFLG",
        0x8 => "ESME_RSYSERR",
        0xA => "ESME_RINVSRCADR",
        0xB => "ESME_RINVDSTADR",
        0xC => "ESME_RINVMSGID",
        0xD => "ESME_RBINDFAIL",
        0xE => "ESME_RINVPASWD",
        0xF => "ESME_RINVSYSID",
        0x11 => "ESME_RCANCELFAIL",
        0x13 => "ESME_RREPLACEFAIL",
        0x14 => "ESME_RMSGQFUL",
        0x15 => "ESME_RINVSERTYP",
        0x33 => "ESME_RINVNUMDESTS",
        0x34 => "ESME_RINVDLNAME",
        0x40 => "ESME_RINVDESTFLAG",
        0x42 => "ESME_RINVSUBREP",
        0x43 => "ESME_RINVESMCLASS",
        0x44 => "ESME_RCNTSUBDL",
        0x45 => "ESME_RSUBMITFAIL",
        0x48 => "ESME_RINVSRCTON",
        0x49 => "ESME_RINVSRCNPI",
        0x50 => "ESME_RINVDSTTON",
        0x51 => "ESME_RINVDSTNPI",
        0x53 => "ESME_RINVSYSTYP",
        0x54 => "ESME_RINVREPFLAG",
        0x55 => "ESME_RINVNUMMSGS",
        0x58 => "ESME_RTHROTTLED",
        0x61 => "ESME_RINVSCHED",
        0x62 => "ESME_RINVEXPIRY",
        0x63 => "ESME_RINVDFTMSGID",
        0x64 => "ESME_RXTAPPN",
        0x65 => "ESME_RXPAPPN",
        0x66 => "ESME_RXRAPPN",
        0x67 => "ESME_RQUERYFAIL",
        0xC0 => "ESME_RINVTLVSTREAM",
        0xC1 => "ESME_RTLVNOTALLWD",
        0xC2 => "ESME_RINVTLVLEN",
        0xC3 => "ESME_RMISSINGTLV",
        0xC4 => "ESME_RINVTLVVAL",
        0xFE => "ESME_RDELIVERYFAILURE",
        0xFF => "ESME_RUNKNOWNERR",
        0x100 => "ESME_RSERTYPUNAUTH",
        0x101 => "ESME_RPROHIBITED",
        0x102 => "ESME_RSERTYPUNAVAIL",
        0x103 => "ESME_RSERTYPDENIED",
        0x104 => "ESME_RINVDCS",
        0x105 => "ESME_RINVSRCADDRSUBUNIT",
        0x106 => "ESME_RINVDSTADDRSUBUNIT",
        0x107 => "ESME_RINVBCASTFREQINT",
        0x108 => "ESME_RINVBCASTALIASNAME",
        0x109 => "ESME_RINVBCASTAREAFMT",
        0x10A => "ESME_RINVNUMBCASTAREAS",
        0x10B => "ESME_RINVBCASTCNTTYPE",
        0x10C => "ESME_RINVBCASTMSGCLASS",
        0x10D => "ESME_RBCASTFAIL",
        0x10E => "ESME_RBCASTQUERYFAIL",
        0x10F => "ESME_RBCASTCANCELFAIL",
        0x110 => "ESME_RINVBCASTREP",
        0x111 => "ESME_RINVBCASTSRVGRP",
        0x112 => "ESME_RINVBCASTCHANIND",
        _ => return format!("0x{status:08X}"),
    };
    name.to_owned()
}

/// ESME_RTHROTTLED: the SMSC wants fewer messages a second.
pub const ESME_RTHROTTLED: u32 = 0x58;
/// ESME_RMSGQFUL: the SMSC's message queue is full.
pub const ESME_RMSGQFUL: u32 = 0x14;
/// ESME_RINVPASWD: the bind's password is wrong.
pub const ESME_RINVPASWD: u32 = 0x0E;
/// ESME_RINVSYSID: the bind's system_id is unknown.
pub const ESME_RINVSYSID: u32 = 0x0F;
/// ESME_RINVSYSTYP: the bind's system_type is not accepted.
pub const ESME_RINVSYSTYP: u32 = 0x53;
