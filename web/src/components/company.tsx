import { createContext, useContext, useEffect, useState, type ReactNode } from "react";
import { getJson } from "../api/client";
import { useSession } from "../auth/session";

export interface CompanySummary {
  id: string;
  name: string;
  status?: string;
}

interface CompanyScope {
  /** The company whose views an admin looks at (tenant users: their own, implicitly). */
  companyId: string | undefined;
  companies: CompanySummary[];
  setCompanyId: (id: string) => void;
  /** Query parameters every tenant-scoped read adds. */
  scope: { company_id?: string };
}

const CompanyContext = createContext<CompanyScope>({ companyId: undefined, companies: [], setCompanyId: () => undefined, scope: {} });
const KEY = "soc.company";

export function CompanyProvider({ children }: { children: ReactNode }) {
  const { isAdmin } = useSession();
  const [companies, setCompanies] = useState<CompanySummary[]>([]);
  const [companyId, setCompanyIdState] = useState<string | undefined>(() => sessionStorage.getItem(KEY) ?? undefined);

  useEffect(() => {
    if (!isAdmin) return;
    getJson<{ items: CompanySummary[] }>("/admin/companies/", { status: "active", limit: 500 })
      .then((page) => {
        setCompanies(page.items);
        if (!page.items.some((c) => c.id === sessionStorage.getItem(KEY)) && page.items[0]) {
          sessionStorage.setItem(KEY, page.items[0].id);
          setCompanyIdState(page.items[0].id);
        }
      })
      .catch(() => setCompanies([]));
  }, [isAdmin]);

  const setCompanyId = (id: string) => {
    sessionStorage.setItem(KEY, id);
    setCompanyIdState(id);
  };
  const effective = isAdmin ? companyId : undefined;
  return (
    <CompanyContext.Provider value={{ companyId: effective, companies, setCompanyId, scope: effective ? { company_id: effective } : {} }}>
      {children}
    </CompanyContext.Provider>
  );
}

export function useCompany(): CompanyScope {
  return useContext(CompanyContext);
}
