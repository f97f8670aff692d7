using System.Globalization;
using System.Text.Json;
using Diffuse.Checkpoints;
using Diffuse.Sampling;
using static TorchSharp.torch;

namespace Diffuse.Editing;

/// <summary>
/// What a latent was encoded with, stored beside it: the model's identity (<see cref="DiffusionModel.Identity"/>, a
/// digest of its weights and configuration) and source, the sampler, its steps and exact levels, each image's class (−1
/// unconditional) and the guidance. Decoding needs the same model and levels to invert the encoding.
/// </summary>
/// <param name="ModelIdentity">The digest of the model that encoded the latents.</param>
/// <param name="ModelSource">Where that model came from (its folder or name), to say which model to use.</param>
/// <param name="Sampler">The sampler's name (<see cref="SamplerNames"/>).</param>
/// <param name="Steps">The sampler's steps.</param>
/// <param name="Sigmas">The decoder's noise levels, from the latent's level down to 0.</param>
/// <param name="Classes">The class of each latent (−1 unconditional).</param>
/// <param name="Guidance">The guidance scale of the encoding.</param>
public sealed record LatentInfo(string ModelIdentity, string ModelSource, string Sampler, int Steps, double[] Sigmas, long[] Classes, double Guidance);

/// <summary>
/// A latent file: a safetensors file with the latents (float32 [N, ...], key <c>latents</c>) and the
/// <see cref="LatentInfo"/> as JSON in its metadata (key <c>diffuse.latents</c>), readable by PyTorch's safetensors.
/// </summary>
public static class LatentFile
{
    private const string TensorKey = "latents";
    private const string MetadataKey = "diffuse.latents";

    /// <summary>Writes <paramref name="latents"/> and <paramref name="info"/> to <paramref name="path"/> atomically.</summary>
    public static void Save(string path, Tensor latents, LatentInfo info)
    {
        if (info.Classes.Length != latents.shape[0]) throw new ArgumentException($"{info.Classes.Length} classes for {latents.shape[0]} latents.", nameof(info));
        Safetensors.Save(path, new Dictionary<string, Tensor> { [TensorKey] = latents.to_type(ScalarType.Float32) },
            new Dictionary<string, string> { [MetadataKey] = JsonSerializer.Serialize(info) });
    }

    /// <summary>Reads a latent file: the latents (owned by the caller) and what they were encoded with.</summary>
    /// <exception cref="DiffuseException">The file is missing or not a latent file written by Diffuse.</exception>
    public static (Tensor Latents, LatentInfo Info) Load(string path)
    {
        var header = Safetensors.ReadHeader(path);
        LatentInfo? info = null;
        if (header.Metadata.TryGetValue(MetadataKey, out var json))
        {
            try { info = JsonSerializer.Deserialize<LatentInfo>(json); }
            catch (JsonException) { info = null; }
        }
        if (info is null || header.Entries.All(e => e.Name != TensorKey) || info.Sigmas is null || info.Classes is null)
            throw new DiffuseException($"'{path}' is not a latent file written by Diffuse (no '{TensorKey}' tensor with its '{MetadataKey}' record); encode the images again.");
        var tensors = Safetensors.Load(path);
        foreach (var (name, t) in tensors)
            if (name != TensorKey) t.Dispose();
        var latents = tensors[TensorKey];
        if (info.Classes.Length != latents.shape[0])
        {
            latents.Dispose();
            throw new DiffuseException($"'{path}' records {info.Classes.Length} classes for {latents.shape[0]} latents; encode the images again.");
        }
        return (latents, info);
    }

    /// <summary>
    /// Throws a clear error unless <paramref name="info"/> was encoded by <paramref name="model"/>, whose source is
    /// <paramref name="source"/>.
    /// </summary>
    public static void CheckModel(LatentInfo info, DiffusionModel model, string source)
    {
        if (info.ModelIdentity != model.Identity)
            throw new DiffuseException($"these latents were encoded by another model ({info.ModelSource}, identity {Short(info.ModelIdentity)}), not by {source} (identity {Short(model.Identity)}); decode them with {Param.Of("Inversion.Decode(model)", "that model", info.ModelSource)}, or encode the images again with this one.");
    }

    private static string Short(string identity) => identity.Length > 12 ? identity[..12] : identity;

    /// <summary>The levels as text, for messages.</summary>
    public static string Describe(LatentInfo info) =>
        $"{info.Sampler}, {info.Steps} steps from σ = {info.Sigmas[0].ToString("G4", CultureInfo.InvariantCulture)}, guidance {info.Guidance.ToString("0.##", CultureInfo.InvariantCulture)}";
}
