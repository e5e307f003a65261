/**
 * The chat's rules on likes (SPEC section 4), in one place: the state
 * machine applies them in the total order, the RPC service checks them
 * before broadcasting, and the simulator and tools/chaos check against them.
 * One like per user per message; not one's own message; only a user who
 * liked a message can remove the like.
 */
export type LikeRefusal = 'own-message' | 'already-liked' | 'not-liked';

/** Why `user` may not like (or, with like = false, unlike) the message; undefined if they may. */
export function likeRefusal(message: { readonly user: string; readonly likes: readonly string[] }, user: string, like: boolean): LikeRefusal | undefined {
  const liked = message.likes.includes(user);
  if (!like) return liked ? undefined : 'not-liked';
  if (message.user === user) return 'own-message';
  return liked ? 'already-liked' : undefined;
}
