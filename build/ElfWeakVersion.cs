// Marks one symbol-version requirement of an ELF64 shared library as weak (VER_FLG_WEAK), so that the dynamic loader
// accepts a C++ runtime that lacks that version. Used at build time for TorchSharp's libLibTorchSharp.so, which
// requires GLIBCXX_3.4.32 only for a link-time marker symbol (std::ios_base_library_init) that nothing binds or calls.
// See build/TorchSharpNativeFix.targets and shared design notes (STACK.md).
using System;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace Diffuse.Build
{
    /// <summary>Reads and edits the GNU version-needed section (SHT_GNU_verneed) of an ELF64 little-endian file.</summary>
    public static class ElfVersionNeeds
    {
        private const uint ShtGnuVerneed = 0x6ffffffe;
        private const ushort VerFlagWeak = 0x2;

        /// <summary>One version requirement: its name, flags and the file offset of its flags field.</summary>
        public readonly struct Entry
        {
            public Entry(string name, ushort flags, long flagsOffset) { Name = name; Flags = flags; FlagsOffset = flagsOffset; }
            public string Name { get; }
            public ushort Flags { get; }
            public long FlagsOffset { get; }
            public bool IsWeak => (Flags & VerFlagWeak) != 0;
        }

        /// <summary>Lists every version requirement (Vernaux entry) in the image.</summary>
        public static List<Entry> Read(byte[] image)
        {
            var entries = new List<Entry>();
            if (image.Length < 64 || image[0] != 0x7f || image[1] != (byte)'E' || image[2] != (byte)'L' || image[3] != (byte)'F')
                throw new InvalidDataException("not an ELF file");
            if (image[4] != 2 || image[5] != 1)
                throw new InvalidDataException("only 64-bit little-endian ELF files are supported");
            long shoff = (long)BitConverter.ToUInt64(image, 0x28);
            int shentsize = BitConverter.ToUInt16(image, 0x3A);
            int shnum = BitConverter.ToUInt16(image, 0x3C);
            for (int i = 0; i < shnum; i++)
            {
                long sh = shoff + (long)i * shentsize;
                if (BitConverter.ToUInt32(image, (int)sh + 4) != ShtGnuVerneed) continue;
                long offset = (long)BitConverter.ToUInt64(image, (int)sh + 0x18);
                uint link = BitConverter.ToUInt32(image, (int)sh + 0x28);
                uint count = BitConverter.ToUInt32(image, (int)sh + 0x2C);
                long strtab = (long)BitConverter.ToUInt64(image, (int)(shoff + link * shentsize) + 0x18);
                long need = offset;
                for (uint n = 0; n < count; n++)
                {
                    int auxCount = BitConverter.ToUInt16(image, (int)need + 2);
                    long aux = need + BitConverter.ToUInt32(image, (int)need + 8);
                    for (int a = 0; a < auxCount; a++)
                    {
                        ushort flags = BitConverter.ToUInt16(image, (int)aux + 4);
                        uint nameOffset = BitConverter.ToUInt32(image, (int)aux + 8);
                        entries.Add(new Entry(ReadString(image, strtab + nameOffset), flags, aux + 4));
                        aux += BitConverter.ToUInt32(image, (int)aux + 12);
                    }
                    need += BitConverter.ToUInt32(image, (int)need + 12);
                }
            }
            return entries;
        }

        /// <summary>Makes the named version requirement weak; returns how many entries changed (0 when already weak or absent).</summary>
        public static int MarkWeak(string path, string version)
        {
            byte[] image = File.ReadAllBytes(path);
            int changed = 0;
            foreach (var entry in Read(image))
            {
                if (entry.Name != version || entry.IsWeak) continue;
                ushort flags = (ushort)(entry.Flags | VerFlagWeak);
                image[entry.FlagsOffset] = (byte)(flags & 0xff);
                image[entry.FlagsOffset + 1] = (byte)(flags >> 8);
                changed++;
            }
            if (changed > 0)
            {
                // Write a new file and rename it over the old one: never edit a file that may be linked to a package cache.
                string temp = path + ".weak.tmp";
                File.WriteAllBytes(temp, image);
                File.Delete(path);
                File.Move(temp, path);
            }
            return changed;
        }

        private static string ReadString(byte[] image, long offset)
        {
            long end = offset;
            while (image[end] != 0) end++;
            return Encoding.ASCII.GetString(image, (int)offset, (int)(end - offset));
        }
    }

#if !DIFFUSE_ELF_NO_TASK
    /// <summary>MSBuild task: marks <see cref="Version"/> weak in every given file that exists.</summary>
    public class MarkElfVersionWeak : Microsoft.Build.Utilities.Task
    {
        [Microsoft.Build.Framework.Required] public Microsoft.Build.Framework.ITaskItem[] Files { get; set; } = Array.Empty<Microsoft.Build.Framework.ITaskItem>();
        [Microsoft.Build.Framework.Required] public string Version { get; set; } = "";

        public override bool Execute()
        {
            foreach (var item in Files)
            {
                string path = item.ItemSpec;
                if (!File.Exists(path)) continue;
                try
                {
                    int changed = ElfVersionNeeds.MarkWeak(path, Version);
                    if (changed > 0)
                        Log.LogMessage(Microsoft.Build.Framework.MessageImportance.High, $"Diffuse: marked {Version} weak in {path} (TorchSharp loads on GCC 12 runtimes).");
                }
                catch (Exception e)
                {
                    Log.LogError($"Diffuse: could not patch {path}: {e.Message}");
                    return false;
                }
            }
            return true;
        }
    }
#endif
}
