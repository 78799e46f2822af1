/** Platform REST client: session, users, clusters, businesses and alerting objects. */
import { del, get, post, put, request } from './http';

export interface User { name: string; display_name?: string; roles: string[]; is_admin: boolean }
export type Item = Record<string, unknown> & { id?: string | number; name?: string };

const base = '/api/platform/v1';

export const login = (username: string, password: string) => post<{ user: User }>(`${base}/login`, { username, password });
export const logout = () => post<unknown>(`${base}/logout`);
export const me = async (): Promise<User | null> => {
  try {
    const r = await request<{ user?: User } & Partial<User>>('GET', `${base}/me`, undefined, { quiet401: true });
    return (r.user ?? (r as User)) || null;
  } catch {
    return null;
  }
};

/** Lists a collection (`{"items":[...]}`; a bare array is accepted too). */
export async function list(path: string): Promise<Item[]> {
  const r = await get<{ items?: Item[] } | Item[]>(`${base}/${path}`);
  return Array.isArray(r) ? r : r.items ?? [];
}
export const create = (path: string, body: unknown) => post<Item>(`${base}/${path}`, body);
export const update = (path: string, id: string | number, body: unknown) => put<Item>(`${base}/${path}/${encodeURIComponent(String(id))}`, body);
export const remove = (path: string, id: string | number) => del<unknown>(`${base}/${path}/${encodeURIComponent(String(id))}`);
export const action = (path: string, body?: unknown) => post<unknown>(`${base}/${path}`, body);

/** The identifier of an item: `id` when present, else `name`. */
export const idOf = (i: Item): string => String(i.id ?? i.name ?? '');
/** A label for an item. */
export const labelOf = (i: Item): string => String(i.display_name ?? i.name ?? i.id ?? '');
