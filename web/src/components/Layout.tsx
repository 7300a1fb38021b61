import { Suspense, useEffect, useState } from "react";
import { NavLink, Outlet, useLocation } from "react-router-dom";
import { getJson } from "../api/client";
import { useSession } from "../auth/session";
import { useCompany } from "./company";
import { LiveProvider, useAfterFirstScreen, useLiveFrames } from "./live";
import { Loading } from "./States";
import { applyTheme, initialTheme, type Theme } from "./theme";

interface NavItem {
  to: string;
  label: string;
  permission?: string;
  /** more than one permission needed */
  permissions?: string[];
  adminOnly?: boolean;
  /** admins and tenant administrators */
  managerOnly?: boolean;
}

export const CUSTOMER_NAV: NavItem[] = [
  { to: "/dashboard", label: "Dashboard", permission: "DASHBOARD" },
  { to: "/offenses", label: "Offenses" },
  { to: "/incidents", label: "Incidents" },
  { to: "/tickets", label: "Tickets" },
  { to: "/threat-alerts", label: "Threat alerts", permission: "THREAT_INTELLIGENCE" },
  { to: "/assets", label: "Assets", permission: "ASSETS" },
  { to: "/ti-matches", label: "Threat-intel matches", permissions: ["THREAT_INTELLIGENCE", "DASHBOARD"] },
  { to: "/event-logs", label: "Event logs" },
  { to: "/reports", label: "Reports", permission: "REPORTS" },
  { to: "/actions", label: "Vendor actions" },
  { to: "/notifications", label: "Notifications" },
  { to: "/chat", label: "Support chat" },
  { to: "/audit", label: "Audit trail", managerOnly: true },
  { to: "/notification-settings", label: "Notification rules", managerOnly: true },
];

export const ADMIN_NAV: NavItem[] = [
  { to: "/manage/companies", label: "Companies", adminOnly: true },
  { to: "/manage/integrations", label: "Integrations", adminOnly: true },
  { to: "/manage/mappings", label: "Mappings", adminOnly: true },
  { to: "/manage/sla", label: "SLA", adminOnly: true },
  { to: "/manage/users", label: "Users", adminOnly: true },
  { to: "/manage/directory-groups", label: "Directory groups", adminOnly: true },
  { to: "/manage/login-audit", label: "Login audit", adminOnly: true },
  { to: "/manage/dead-letters", label: "Dead letters", adminOnly: true },
];

function useUnreadChat(): number {
  const { scope } = useCompany();
  const [unread, setUnread] = useState(0);
  const location = useLocation();
  const started = useAfterFirstScreen();
  useEffect(() => {
    if (!started) return;
    let stop = false;
    const poll = () =>
      getJson<{ unread?: number; count?: number }>("/tenant/chat/unread/", scope)
        .then((answer) => !stop && setUnread(Number(answer.unread ?? answer.count ?? 0)))
        .catch(() => undefined);
    poll();
    const timer = window.setInterval(poll, 15_000);
    return () => {
      stop = true;
      window.clearInterval(timer);
    };
  }, [scope.company_id, location.pathname, started]);
  return unread;
}

/** The unread in-app notifications: counted by the API, bumped live by the socket's frames. */
function useUnreadNotifications(): number {
  const { scope } = useCompany();
  const [unread, setUnread] = useState(0);
  const location = useLocation();
  const started = useAfterFirstScreen();
  useEffect(() => {
    if (!started) return;
    let stop = false;
    getJson<{ unread: number }>("/tenant/notifications/", { ...scope, limit: 1 })
      .then((answer) => !stop && setUnread(Number(answer.unread ?? 0)))
      .catch(() => undefined);
    return () => {
      stop = true;
    };
  }, [scope.company_id, location.pathname, started]);
  useLiveFrames("notification", (frame) => {
    if (frame.event === "notification.posted") setUnread((n) => n + 1);
  });
  return unread;
}

export function Layout() {
  return (
    <LiveProvider>
      <Shell />
    </LiveProvider>
  );
}

function Shell() {
  const session = useSession();
  const { companies, companyId, setCompanyId } = useCompany();
  const [theme, setTheme] = useState<Theme>(initialTheme);
  const [menuOpen, setMenuOpen] = useState(false);
  const unread = useUnreadChat();
  const unreadNotices = useUnreadNotifications();
  const location = useLocation();
  useEffect(() => applyTheme(theme), [theme]);
  useEffect(() => setMenuOpen(false), [location.pathname]);

  const visible = (item: NavItem) =>
    item.adminOnly
      ? session.isAdmin
      : item.managerOnly
        ? session.isManager
        : (!item.permission || session.can(item.permission)) && (item.permissions ?? []).every((p) => session.can(p));
  const link = (item: NavItem) => (
    <li key={item.to}>
      <NavLink to={item.to}>
        {item.label}
        {item.to === "/chat" && unread > 0 ? (
          <span className="badge" aria-label={`${unread} unread`}>
            {unread}
          </span>
        ) : null}
        {item.to === "/notifications" && unreadNotices > 0 ? (
          <span className="badge" aria-label={`${unreadNotices} unread`} data-testid="notifications-unread">
            {unreadNotices}
          </span>
        ) : null}
      </NavLink>
    </li>
  );

  return (
    <div className="shell">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <button type="button" className="menu-button" aria-expanded={menuOpen} aria-controls="sidebar" onClick={() => setMenuOpen((o) => !o)}>
          Menu
        </button>
        <span className="brand">SOC Portal</span>
        {session.isAdmin ? (
          <label className="company-switcher">
            <span>Company</span>
            <select value={companyId ?? ""} onChange={(e) => setCompanyId(e.target.value)}>
              {companies.map((c) => (
                <option key={c.id} value={c.id}>
                  {c.name}
                </option>
              ))}
            </select>
          </label>
        ) : null}
        <span className="spacer" />
        <button type="button" className="ghost" onClick={() => setTheme(theme === "dark" ? "light" : "dark")} aria-label={`Switch to ${theme === "dark" ? "light" : "dark"} theme`}>
          {theme === "dark" ? "Light" : "Dark"}
        </button>
        <NavLink className="who" to="/account" title={`Your account${session.user?.email ? ` (${session.user.email})` : ""}`}>
          {session.user?.full_name || session.user?.username}
          {session.readOnly ? <span className="tag">read-only</span> : null}
        </NavLink>
        <button type="button" onClick={() => void session.signOut()}>
          Sign out
        </button>
      </header>
      <nav id="sidebar" className={menuOpen ? "sidebar open" : "sidebar"} aria-label="Main">
        <ul>{CUSTOMER_NAV.filter(visible).map(link)}</ul>
        {session.isAdmin ? (
          <>
            <h2 className="nav-heading">Administration</h2>
            <ul>{ADMIN_NAV.filter(visible).map(link)}</ul>
          </>
        ) : null}
      </nav>
      <main id="main" tabIndex={-1}>
        {/* Pages load on demand: the shell stays while one does. */}
        <Suspense fallback={<Loading />}>
          <Outlet />
        </Suspense>
      </main>
    </div>
  );
}
