using System.Buffers.Binary;
using System.Text;
using System.Text.RegularExpressions;

namespace Diffuse.Tests.Hostile;

/// <summary>
/// Seeded mutations of a valid file for fuzzing: bit flips, random bytes, truncations, insertions, deletions,
/// duplicated ranges, huge or negative length fields, and (for text) number tokens replaced by hostile values. Case i of
/// seed s is always the same bytes, so a failing case is reproduced from its number.
/// </summary>
internal static partial class Mutator
{
    private static readonly string[] HostileNumbers =
        ["0", "-1", "1e309", "-1e309", "2147483648", "1000000000", "99999999999999999999", "1e-320", "NaN", "[]", "null", "\"x\"", "{}", "0.5", "[1e308]"];

    [GeneratedRegex(@"-?\d+(\.\d+)?([eE][+-]?\d+)?", RegexOptions.CultureInvariant)]
    private static partial Regex Number();

    /// <summary>Case <paramref name="index"/> of the mutations of <paramref name="valid"/> (1 to 4 mutations applied).</summary>
    public static byte[] Mutate(byte[] valid, int seed, int index, bool text = false)
    {
        var random = new Random(unchecked(seed * 1_000_003 + index)); // not HashCode: its seed differs per process
        var bytes = new List<byte>(valid);
        int mutations = 1 + random.Next(4);
        for (int m = 0; m < mutations; m++)
        {
            int kind = random.Next(text ? 10 : 9);
            int at = bytes.Count == 0 ? 0 : random.Next(bytes.Count);
            switch (kind)
            {
                case 0 when bytes.Count > 0: // bit flip
                    bytes[at] ^= (byte)(1 << random.Next(8));
                    break;
                case 1 when bytes.Count > 0: // random byte
                    bytes[at] = (byte)random.Next(256);
                    break;
                case 2: // truncation
                    bytes.RemoveRange(at, bytes.Count - at);
                    break;
                case 3: // insertion of random bytes
                    var inserted = new byte[1 + random.Next(16)];
                    random.NextBytes(inserted);
                    bytes.InsertRange(at, inserted);
                    break;
                case 4 when bytes.Count > 0: // deletion
                    bytes.RemoveRange(at, Math.Min(bytes.Count - at, 1 + random.Next(16)));
                    break;
                case 5 when bytes.Count > 0: // a range repeated
                    int length = Math.Min(bytes.Count - at, 1 + random.Next(64));
                    bytes.InsertRange(at, bytes.GetRange(at, length));
                    break;
                case 6 or 7 when bytes.Count >= 8: // a huge, negative or zero length field, 4 or 8 bytes, either byte order
                    var field = new byte[8];
                    ulong value = random.Next(5) switch
                    {
                        0 => ulong.MaxValue,
                        1 => 0x7FFF_FFFF,
                        2 => 0x8000_0000,
                        3 => 0,
                        _ => (ulong)random.NextInt64(),
                    };
                    if (random.Next(2) == 0) BinaryPrimitives.WriteUInt64LittleEndian(field, value);
                    else BinaryPrimitives.WriteUInt64BigEndian(field, value);
                    int width = kind == 6 ? 4 : 8;
                    int start = Math.Min(at, bytes.Count - width);
                    for (int k = 0; k < width; k++) bytes[start + k] = field[k];
                    break;
                case 8 when random.Next(20) == 0: // all random
                    var noise = new byte[random.Next(2 * valid.Length + 1)];
                    random.NextBytes(noise);
                    bytes = new List<byte>(noise);
                    break;
                case 9: // a number token replaced by a hostile value
                    string s = Encoding.UTF8.GetString(bytes.ToArray());
                    var numbers = Number().Matches(s);
                    if (numbers.Count == 0) break;
                    var token = numbers[random.Next(numbers.Count)];
                    s = string.Concat(s.AsSpan(0, token.Index), HostileNumbers[random.Next(HostileNumbers.Length)], s.AsSpan(token.Index + token.Length));
                    bytes = new List<byte>(Encoding.UTF8.GetBytes(s));
                    break;
            }
        }
        return bytes.ToArray();
    }
}
