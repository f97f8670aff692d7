using Diffuse.Data.Images;
using static TorchSharp.torch;

namespace Diffuse.Cli;

/// <summary>
/// Writes image samples as one PNG per sample into a folder, batch by batch, so that memory does not grow with the
/// number of samples; all or nothing: the files go to a hidden staging folder beside the target
/// (<c>.&lt;name&gt;.&lt;pid&gt;.&lt;guid&gt;.tmp</c>) that becomes the target when every sample is written, so that a killed or
/// failed run leaves no partial output (the staging folder of a killed run is removed by the next write there).
/// </summary>
internal static class SamplesFolder
{
    /// <summary>Writes the images of <paramref name="batches"/> (model range, [B, C, H, W], each disposed here) named by <paramref name="nameOf"/>(sample number).</summary>
    public static void Write(string folder, IEnumerable<Tensor> batches, Func<int, string> nameOf)
    {
        string target = Path.GetFullPath(folder);
        string parent = Path.GetDirectoryName(target)!;
        Directory.CreateDirectory(parent);
        string staging = Path.Combine(parent, $".{Path.GetFileName(target)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        Directory.CreateDirectory(staging);
        try
        {
            int i = 0;
            foreach (var batch in batches)
            {
                using var scope = NewDisposeScope();
                using (batch)
                {
                    var bytes = ImageDataset.ToBytes(batch);
                    for (int k = 0; k < bytes.shape[0]; k++, i++)
                        Pictures.SavePng(Path.Combine(staging, nameOf(i)), bytes[k]);
                }
            }
            if (!Directory.Exists(target))
            {
                Directory.Move(staging, target);
                return;
            }
            // The folder exists (earlier samples, other files): move the new files in, each rename atomic.
            foreach (string file in Directory.GetFiles(staging))
                File.Move(file, Path.Combine(target, Path.GetFileName(file)), overwrite: true);
        }
        finally
        {
            if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        }
    }
}
