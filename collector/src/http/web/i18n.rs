//! Every string the web UI shows, in Vietnamese (the default) and English.
//!
//! One struct with a field per string and one constant per language: a string missing from a
//! language is a compile error, not a blank on a page. A string that holds a figure from the
//! configuration is a method of [`Lang`] matching on the language, so the same holds for it.
//! Numbers follow each language's habits (Vietnamese writes `91,5 %` and `1.234`; English
//! `91.5%` and `1,234`).

/// The language of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lang {
    Vi,
    En,
}

impl Lang {
    pub(super) fn parse(s: &str) -> Option<Lang> {
        match s {
            "vi" => Some(Lang::Vi),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    pub(super) fn code(self) -> &'static str {
        match self {
            Lang::Vi => "vi",
            Lang::En => "en",
        }
    }

    /// The other language: the header's switch links to it.
    pub(super) fn other(self) -> Lang {
        match self {
            Lang::Vi => Lang::En,
            Lang::En => Lang::Vi,
        }
    }

    pub(super) fn t(self) -> &'static Text {
        match self {
            Lang::Vi => &VI,
            Lang::En => &EN,
        }
    }

    /// A ratio as a percentage with one decimal, or a dash.
    pub(super) fn pct(self, r: Option<f64>) -> String {
        match r {
            None => "–".to_string(),
            Some(r) => {
                let text = crate::present::decimals_down(r * 100.0, 1);
                match self {
                    Lang::Vi => format!("{} %", text.replace('.', ",")),
                    Lang::En => format!("{text}%"),
                }
            }
        }
    }

    /// A count with thousands grouped.
    pub(super) fn int(self, n: u64) -> String {
        let digits = n.to_string();
        let sep = match self {
            Lang::Vi => '.',
            Lang::En => ',',
        };
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(sep);
            }
            out.push(c);
        }
        out
    }

    /// A decimal number with `places` decimals.
    pub(super) fn dec(self, x: f64, places: usize) -> String {
        let text = format!("{x:.places$}");
        match self {
            Lang::Vi => text.replace('.', ","),
            Lang::En => text,
        }
    }

    /// What the equipment table counts: staff with a computer that reported within the
    /// equipment window of `days` (the collector's `equipment_window_days`).
    pub(super) fn equipment_help(self, days: u64) -> String {
        let n = self.int(days);
        match self {
            Lang::Vi => format!(
                "Số cán bộ có máy tính hoạt động trong {n} ngày qua, so với chỉ tiêu của từng cấp."
            ),
            Lang::En => {
                let last = if days == 1 {
                    "day".to_string()
                } else {
                    format!("{n} days")
                };
                format!(
                    "Staff with a computer active in the last {last}, against each level's target."
                )
            }
        }
    }

    /// The part of a machine an inventory change is about ([`crate::changes::COMPONENTS`]);
    /// one this version does not know is shown as it is stored.
    pub(super) fn component(self, component: &str) -> &str {
        let t = self.t();
        match component {
            "system" => t.system,
            "os" => t.os,
            "cpu" => t.cpu,
            "memory" => t.memory,
            "disk" => t.disks,
            "network" => t.interfaces,
            "memory_module" => t.memory_modules,
            "monitor" => t.monitors,
            "gpu" => t.gpus,
            other => other,
        }
    }

    /// The name of a level the tree uses; an unknown one is shown as it is stored.
    pub(super) fn level(self, level: &str) -> String {
        let t = self.t();
        match level {
            "province" => t.level_province.to_string(),
            "district" => t.level_district.to_string(),
            "commune" => t.level_commune.to_string(),
            "unassigned" => t.level_unassigned.to_string(),
            other => other.to_string(),
        }
    }

    /// An agent state (`online`, `stale`, `offline`, `revoked`) or a role for people.
    pub(super) fn word(self, word: &str) -> &'static str {
        let t = self.t();
        match word {
            "online" => t.online,
            "stale" => t.stale,
            "offline" => t.offline,
            "revoked" => t.revoked,
            "workstation" => t.workstation,
            "server" => t.server,
            "internet" => t.class_internet,
            "gov-wan" => t.class_gov_wan,
            "datacentre" => t.class_datacentre,
            "added" => t.change_added,
            "removed" => t.change_removed,
            "changed" => t.change_changed,
            _ => "?",
        }
    }
}

/// The strings of one language.
#[derive(Debug)]
pub(super) struct Text {
    pub app_name: &'static str,
    pub app_tagline: &'static str,
    pub nav_overview: &'static str,
    pub nav_units: &'static str,
    pub nav_datacentre: &'static str,
    pub switch_to: &'static str,
    pub sign_out: &'static str,
    pub sign_in: &'static str,
    pub sign_in_title: &'static str,
    pub sign_in_help: &'static str,
    pub token_label: &'static str,
    pub bad_token: &'static str,
    pub form_expired: &'static str,
    pub csv: &'static str,
    pub yes: &'static str,
    pub no: &'static str,
    pub not_found: &'static str,
    pub failed: &'static str,
    pub times_in: &'static str,
    pub figures_at: &'static str,

    pub level: &'static str,
    pub level_province: &'static str,
    pub level_district: &'static str,
    pub level_commune: &'static str,
    pub level_unassigned: &'static str,
    pub units: &'static str,
    pub unit: &'static str,
    pub staff: &'static str,
    pub equipped: &'static str,
    pub ratio: &'static str,
    pub target: &'static str,
    pub against_target: &'static str,
    pub lan: &'static str,
    pub broadband: &'static str,
    pub speed: &'static str,
    pub machines: &'static str,

    pub equipment_title: &'static str,
    pub connectivity_title: &'static str,
    pub broadband_share: &'static str,
    pub lan_share: &'static str,
    pub agents_title: &'static str,
    pub hosts_title: &'static str,
    pub hosts_up: &'static str,
    pub services_title: &'static str,
    pub services_up: &'static str,
    pub trend_title: &'static str,
    pub trend_empty: &'static str,
    pub date: &'static str,
    pub met: &'static str,
    pub below: &'static str,

    pub units_title: &'static str,
    pub units_help: &'static str,
    pub sub_units: &'static str,
    pub no_sub_units: &'static str,
    pub no_machines: &'static str,
    pub reachable: &'static str,

    pub online: &'static str,
    pub stale: &'static str,
    pub offline: &'static str,
    pub revoked: &'static str,
    pub workstation: &'static str,
    pub server: &'static str,
    pub class_internet: &'static str,
    pub class_gov_wan: &'static str,
    pub class_datacentre: &'static str,

    pub machine_title: &'static str,
    pub hostname: &'static str,
    pub role: &'static str,
    pub state: &'static str,
    pub last_report: &'static str,
    pub never: &'static str,
    pub enrolled: &'static str,
    pub agent_version: &'static str,
    pub inventory: &'static str,
    pub no_inventory: &'static str,
    pub system: &'static str,
    pub os: &'static str,
    pub cpu: &'static str,
    pub memory: &'static str,
    pub model: &'static str,
    pub serial: &'static str,
    pub memory_modules: &'static str,
    pub disks: &'static str,
    pub interfaces: &'static str,
    pub monitors: &'static str,
    pub gpus: &'static str,
    pub software: &'static str,
    pub packages: &'static str,
    pub connectivity: &'static str,
    pub no_probes: &'static str,
    pub probe: &'static str,
    pub class: &'static str,
    pub success: &'static str,
    pub rtt: &'static str,
    pub jitter: &'static str,
    pub changes_title: &'static str,
    pub no_changes: &'static str,
    pub component: &'static str,
    pub change: &'static str,
    pub before: &'static str,
    pub after: &'static str,
    pub change_added: &'static str,
    pub change_removed: &'static str,
    pub change_changed: &'static str,

    pub datacentre_title: &'static str,
    pub host: &'static str,
    pub service: &'static str,
    pub status: &'static str,
    pub up: &'static str,
    pub down: &'static str,
    pub latency: &'static str,
    pub cert_days: &'static str,
    pub checked: &'static str,
    pub no_hosts: &'static str,
    pub no_services: &'static str,
}

pub(super) const VI: Text = Text {
    app_name: "hạ tầng",
    app_tagline: "Hạ tầng số của tỉnh: máy tính, kết nối, trung tâm dữ liệu",
    nav_overview: "Tổng quan",
    nav_units: "Đơn vị",
    nav_datacentre: "Trung tâm dữ liệu",
    switch_to: "English",
    sign_out: "Đăng xuất",
    sign_in: "Đăng nhập",
    sign_in_title: "Đăng nhập hệ thống",
    sign_in_help: "Dán mã truy cập (viewer hoặc admin) do quản trị viên cấp, bắt đầu bằng htu_.",
    token_label: "Mã truy cập",
    bad_token: "Mã truy cập không đúng, đã hết hạn hoặc đã bị thu hồi.",
    form_expired: "Biểu mẫu đã hết hạn. Vui lòng thử lại.",
    csv: "Tải CSV",
    yes: "Có",
    no: "Không",
    not_found: "Không tìm thấy",
    failed: "Không đọc được dữ liệu. Vui lòng thử lại sau.",
    times_in: "Thời gian theo múi giờ",
    figures_at: "Số liệu lúc",

    level: "Cấp",
    level_province: "Cấp tỉnh",
    level_district: "Cấp huyện",
    level_commune: "Cấp xã",
    level_unassigned: "Chưa gán đơn vị",
    units: "Số đơn vị",
    unit: "Đơn vị",
    staff: "Cán bộ",
    equipped: "Có máy tính",
    ratio: "Tỷ lệ",
    target: "Chỉ tiêu",
    against_target: "So với chỉ tiêu",
    lan: "Mạng LAN",
    broadband: "Băng rộng",
    speed: "Tốc độ tải xuống",
    machines: "Máy tính",

    equipment_title: "Tỷ lệ cán bộ được trang bị máy tính",
    connectivity_title: "Kết nối mạng theo cấp",
    broadband_share: "Đơn vị có băng rộng",
    lan_share: "Đơn vị có mạng LAN",
    agents_title: "Máy trạm báo cáo",
    hosts_title: "Máy chủ trung tâm dữ liệu",
    hosts_up: "đang hoạt động",
    services_title: "Ứng dụng dùng chung",
    services_up: "hoạt động bình thường",
    trend_title: "Diễn biến tỷ lệ trang bị",
    trend_empty: "Chưa có ảnh chụp số liệu hằng ngày.",
    date: "Ngày",
    met: "Đạt",
    below: "Chưa đạt",

    units_title: "Đơn vị hành chính",
    units_help: "Chọn một đơn vị để xem các đơn vị trực thuộc và máy tính của đơn vị.",
    sub_units: "Đơn vị trực thuộc",
    no_sub_units: "Không có đơn vị trực thuộc.",
    no_machines: "Chưa có máy nào đăng ký.",
    reachable: "Kết nối được",

    online: "Trực tuyến",
    stale: "Chậm báo cáo",
    offline: "Mất kết nối",
    revoked: "Đã thu hồi",
    workstation: "Máy trạm",
    server: "Máy chủ",
    class_internet: "Internet",
    class_gov_wan: "Mạng truyền số liệu chuyên dùng",
    class_datacentre: "Trung tâm dữ liệu",

    machine_title: "Máy tính",
    hostname: "Tên máy",
    role: "Vai trò",
    state: "Trạng thái",
    last_report: "Báo cáo gần nhất",
    never: "Chưa bao giờ",
    enrolled: "Ngày đăng ký",
    agent_version: "Phiên bản tác tử",
    inventory: "Cấu hình",
    no_inventory: "Chưa có thông tin cấu hình.",
    system: "Hệ thống",
    os: "Hệ điều hành",
    cpu: "Bộ xử lý",
    memory: "Bộ nhớ",
    model: "Hãng, mẫu máy",
    serial: "Số sê-ri",
    memory_modules: "Thanh RAM",
    disks: "Ổ đĩa",
    interfaces: "Card mạng",
    monitors: "Màn hình",
    gpus: "Card đồ hoạ",
    software: "Phần mềm",
    packages: "gói",
    connectivity: "Kết nối",
    no_probes: "Chưa có kết quả kiểm tra kết nối.",
    probe: "Kiểm tra",
    class: "Loại mạng",
    success: "Thành công",
    rtt: "Độ trễ TB",
    jitter: "Dao động",
    changes_title: "Lịch sử thay đổi cấu hình",
    no_changes: "Chưa có thay đổi.",
    component: "Thành phần",
    change: "Thay đổi",
    before: "Trước",
    after: "Sau",
    change_added: "Thêm",
    change_removed: "Gỡ bỏ",
    change_changed: "Thay đổi",

    datacentre_title: "Trung tâm dữ liệu tỉnh",
    host: "Máy chủ",
    service: "Ứng dụng",
    status: "Tình trạng",
    up: "Hoạt động",
    down: "Ngừng",
    latency: "Độ trễ",
    cert_days: "Chứng thư số còn (ngày)",
    checked: "Kiểm tra lúc",
    no_hosts: "Chưa có máy chủ nào báo cáo.",
    no_services: "Chưa cấu hình kiểm tra ứng dụng nào.",
};

pub(super) const EN: Text = Text {
    app_name: "hatang",
    app_tagline: "The province's digital infrastructure: computers, connectivity, data centre",
    nav_overview: "Overview",
    nav_units: "Units",
    nav_datacentre: "Data centre",
    switch_to: "Tiếng Việt",
    sign_out: "Sign out",
    sign_in: "Sign in",
    sign_in_title: "Sign in",
    sign_in_help: "Paste the access token (viewer or admin) your administrator gave you; it starts with htu_.",
    token_label: "Access token",
    bad_token: "Unknown, expired or revoked token.",
    form_expired: "The form expired. Please try again.",
    csv: "Download CSV",
    yes: "Yes",
    no: "No",
    not_found: "Not found",
    failed: "The figures could not be read. Please try again later.",
    times_in: "Times are in",
    figures_at: "Figures as of",

    level: "Level",
    level_province: "Province",
    level_district: "District",
    level_commune: "Commune",
    level_unassigned: "Unassigned",
    units: "Units",
    unit: "Unit",
    staff: "Staff",
    equipped: "Equipped",
    ratio: "Ratio",
    target: "Target",
    against_target: "Against target",
    lan: "LAN",
    broadband: "Broadband",
    speed: "Download speed",
    machines: "Machines",

    equipment_title: "Staff equipped with a computer",
    connectivity_title: "Connectivity by level",
    broadband_share: "Units with broadband",
    lan_share: "Units with a LAN",
    agents_title: "Reporting machines",
    hosts_title: "Data-centre hosts",
    hosts_up: "up",
    services_title: "Shared applications",
    services_up: "healthy",
    trend_title: "Equipment ratio over time",
    trend_empty: "No daily snapshots yet.",
    date: "Date",
    met: "Met",
    below: "Below",

    units_title: "Administrative units",
    units_help: "Pick a unit to see the units under it and its machines.",
    sub_units: "Units under it",
    no_sub_units: "No units under this one.",
    no_machines: "No machine enrolled yet.",
    reachable: "Reachable",

    online: "Online",
    stale: "Stale",
    offline: "Offline",
    revoked: "Revoked",
    workstation: "Workstation",
    server: "Server",
    class_internet: "Internet",
    class_gov_wan: "Government WAN",
    class_datacentre: "Data centre",

    machine_title: "Machine",
    hostname: "Hostname",
    role: "Role",
    state: "State",
    last_report: "Last report",
    never: "Never",
    enrolled: "Enrolled",
    agent_version: "Agent version",
    inventory: "Inventory",
    no_inventory: "No inventory yet.",
    system: "System",
    os: "Operating system",
    cpu: "CPU",
    memory: "Memory",
    model: "Make and model",
    serial: "Serial number",
    memory_modules: "Memory modules",
    disks: "Disks",
    interfaces: "Network interfaces",
    monitors: "Monitors",
    gpus: "Graphics",
    software: "Software",
    packages: "packages",
    connectivity: "Connectivity",
    no_probes: "No probe results yet.",
    probe: "Probe",
    class: "Network",
    success: "Succeeded",
    rtt: "Avg RTT",
    jitter: "Jitter",
    changes_title: "Inventory change history",
    no_changes: "No changes yet.",
    component: "Component",
    change: "Change",
    before: "Before",
    after: "After",
    change_added: "Added",
    change_removed: "Removed",
    change_changed: "Changed",

    datacentre_title: "Provincial data centre",
    host: "Host",
    service: "Application",
    status: "Status",
    up: "Up",
    down: "Down",
    latency: "Latency",
    cert_days: "Certificate days left",
    checked: "Checked",
    no_hosts: "No server has reported yet.",
    no_services: "No application checks configured.",
};

#[cfg(test)]
mod tests {
    use super::Lang;

    #[test]
    fn numbers_read_as_each_language_writes_them() {
        assert_eq!(Lang::Vi.pct(Some(0.915)), "91,5 %");
        assert_eq!(Lang::En.pct(Some(0.915)), "91.5%");
        assert_eq!(Lang::En.pct(None), "–");
        assert_eq!(Lang::Vi.int(1_234_567), "1.234.567");
        assert_eq!(Lang::En.int(999), "999");
        assert_eq!(Lang::En.int(1000), "1,000");
    }

    #[test]
    fn every_component_of_a_change_has_a_name_in_each_language() {
        for lang in [Lang::Vi, Lang::En] {
            for component in crate::changes::COMPONENTS {
                assert_ne!(lang.component(component), component, "{lang:?}");
            }
        }
        assert_eq!(Lang::Vi.component("keyboard"), "keyboard");
    }

    #[test]
    fn the_equipment_window_is_said_in_days() {
        assert!(Lang::En.equipment_help(1).contains("in the last day,"));
        assert!(Lang::En.equipment_help(30).contains("in the last 30 days,"));
        assert!(Lang::Vi.equipment_help(1).contains("trong 1 ngày qua,"));
    }
}
