namespace Diffuse.Imaging.Gif;

/// <summary>
/// The variable-length LZW compression of GIF89a (specification, section 22 and appendix F) for 8-bit colour indices:
/// codes start 9 bits wide and grow to 12; a clear code restarts the table when it fills up.
/// </summary>
internal static class LzwEncoder
{
    private const int MinCodeSize = 8;
    private const int ClearCode = 1 << MinCodeSize;   // 256
    private const int EndCode = ClearCode + 1;        // 257
    private const int FirstFree = ClearCode + 2;      // 258
    private const int MaxCodes = 4096;                // 12-bit codes

    /// <summary>Writes the image data block: the minimum code size, the compressed data in sub-blocks, the terminator.</summary>
    public static void Write(Stream output, ReadOnlySpan<byte> indices)
    {
        output.WriteByte(MinCodeSize);
        var bits = new BitPacker(output);
        // child[prefix * 256 + next] is the code of (string of prefix) + next, or 0 when absent (real codes are >= 258).
        var child = new short[MaxCodes * 256];
        int nextCode = FirstFree, codeSize = MinCodeSize + 1;
        bits.Write(ClearCode, codeSize);
        if (indices.Length > 0)
        {
            int prefix = indices[0];
            for (int i = 1; i < indices.Length; i++)
            {
                int k = indices[i];
                int slot = prefix << 8 | k;
                int code = child[slot];
                if (code != 0)
                {
                    prefix = code;
                    continue;
                }
                bits.Write(prefix, codeSize);
                if (nextCode < MaxCodes)
                {
                    child[slot] = (short)nextCode++;
                    // The decoder adds its entry one code later, so it widens when the table holds 2^size + 1 codes.
                    if (nextCode > 1 << codeSize && codeSize < 12) codeSize++;
                }
                else
                {
                    bits.Write(ClearCode, codeSize);
                    Array.Clear(child);
                    nextCode = FirstFree;
                    codeSize = MinCodeSize + 1;
                }
                prefix = k;
            }
            bits.Write(prefix, codeSize);
            // The decoder adds an entry after reading that last code too, and may widen before reading the end code.
            if (nextCode < MaxCodes)
            {
                nextCode++;
                if (nextCode > 1 << codeSize && codeSize < 12) codeSize++;
            }
        }
        bits.Write(EndCode, codeSize);
        bits.Flush();
        output.WriteByte(0);
    }

    /// <summary>Packs codes least-significant bit first into bytes, and bytes into sub-blocks of at most 255.</summary>
    private sealed class BitPacker(Stream output)
    {
        private readonly byte[] block = new byte[255];
        private int blockLength;
        private int buffer;
        private int count;

        public void Write(int code, int size)
        {
            buffer |= code << count;
            count += size;
            while (count >= 8)
            {
                Emit((byte)buffer);
                buffer >>= 8;
                count -= 8;
            }
        }

        public void Flush()
        {
            if (count > 0) Emit((byte)buffer);
            buffer = count = 0;
            if (blockLength > 0)
            {
                output.WriteByte((byte)blockLength);
                output.Write(block, 0, blockLength);
                blockLength = 0;
            }
        }

        private void Emit(byte b)
        {
            block[blockLength++] = b;
            if (blockLength == block.Length)
            {
                output.WriteByte((byte)blockLength);
                output.Write(block, 0, blockLength);
                blockLength = 0;
            }
        }
    }
}
