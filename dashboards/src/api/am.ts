/** Alertmanager API v2 client (alerts, silences). */
import { del, get, post } from './http';

export interface Matcher { name: string; value: string; isRegex: boolean; isEqual?: boolean }
export interface Alert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt?: string;
  fingerprint: string;
  status: { state: string; silencedBy?: string[]; inhibitedBy?: string[] };
  generatorURL?: string;
}
export interface Silence {
  id: string;
  matchers: Matcher[];
  startsAt: string;
  endsAt: string;
  createdBy: string;
  comment: string;
  status: { state: string };
}

export const alerts = (active = true) => get<Alert[]>(`/api/v2/alerts?active=${active}&silenced=true&inhibited=true`);
export const silences = () => get<Silence[]>('/api/v2/silences');
export const createSilence = (s: Omit<Silence, 'id' | 'status'>) => post<{ silenceID: string }>('/api/v2/silences', s);
export const expireSilence = (id: string) => del<unknown>(`/api/v2/silence/${encodeURIComponent(id)}`);
