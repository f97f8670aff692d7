using System.Text;
using Diffuse.Checkpoints;
using static TorchSharp.torch;

namespace Diffuse.Evaluation.Features;

/// <summary>Opens the feature network of the image metrics from a safetensors file, whichever kind it holds.</summary>
public static class FeatureNetworks
{
    /// <summary>The pytorch-fid weights file that <see cref="FidInceptionV3"/> is made for, named in error messages.</summary>
    public const string FidWeightsFile = "pt_inception-2015-12-05-6726825d.pth";

    /// <summary>The stages of pytorch-fid's <c>InceptionV3</c> wrapper (<c>blocks.i.j</c>), by block and position; null is a pooling layer.</summary>
    static readonly string?[][] WrapperBlocks =
    [
        ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", null],
        ["Conv2d_3b_1x1", "Conv2d_4a_3x3", null],
        ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"],
        ["Mixed_7a", "Mixed_7b", "Mixed_7c", null],
    ];

    /// <summary>
    /// Loads a feature network: a <see cref="FeatureClassifier"/> saved by Diffuse (recognised by its metadata
    /// <c>kind</c>), or Inception-v3 weights for FID (<see cref="FidInceptionV3"/>, recognised by torchvision-style keys
    /// such as <c>Conv2d_1a_3x3.conv.weight</c>, or by the <c>blocks.0.0.conv.weight</c> keys of pytorch-fid's
    /// <c>InceptionV3</c> wrapper). Inception weights are checked key by key and shape by shape before anything is
    /// read; the 1008-way classifier <c>fc.weight</c>/<c>fc.bias</c> of pytorch-fid's file is accepted and unused, and
    /// <c>num_batches_tracked</c> counters are optional. F32, F16, BF16 and F64 weights are converted to float32.
    /// </summary>
    /// <param name="path">The safetensors file.</param>
    /// <returns>The network in evaluation mode, owned by the caller (dispose it).</returns>
    /// <exception cref="DiffuseException">
    /// The file is missing or invalid, holds neither kind of network, or Inception weights lack keys or have other
    /// shapes: one message names every missing, unexpected and mismatched key and how to convert pytorch-fid's
    /// weights (docs/metrics.md).
    /// </exception>
    public static IImageFeatureNetwork Load(string path)
    {
        var header = Safetensors.ReadHeader(path);
        if (header.Metadata.TryGetValue("kind", out var kind) && kind == FeatureClassifier.Kind)
            return FeatureClassifier.Load(path);
        var names = header.Entries.Select(e => NormaliseInceptionKey(e.Name)).ToList();
        if (names.Any(n => n.StartsWith("Conv2d_", StringComparison.Ordinal) || n.StartsWith("Mixed_", StringComparison.Ordinal)))
            return LoadInception(path, header);
        throw new DiffuseException(
            $"'{path}' holds no feature network Diffuse knows: it is neither a Diffuse feature classifier (metadata kind " +
            $"'{FeatureClassifier.Kind}'{(kind is null ? "" : $"; this file's kind is '{kind}'")}) nor Inception-v3 weights " +
            $"(keys such as 'Conv2d_1a_3x3.conv.weight'). {ConversionHint}");
    }

    static string ConversionHint =>
        $"For FID, convert pytorch-fid's {FidWeightsFile} to safetensors with the four lines of Python in docs/metrics.md " +
        "(torch.load, then safetensors.torch.save_file).";

    /// <summary>Maps a key of pytorch-fid's wrapper (<c>blocks.2.0.branch1x1.conv.weight</c>) to torchvision's (<c>Mixed_5b.branch1x1.conv.weight</c>).</summary>
    internal static string NormaliseInceptionKey(string key)
    {
        var parts = key.Split('.', 4);
        if (parts.Length == 4 && parts[0] == "blocks" && int.TryParse(parts[1], out int block) && int.TryParse(parts[2], out int position)
            && block >= 0 && block < WrapperBlocks.Length && position >= 0 && position < WrapperBlocks[block].Length
            && WrapperBlocks[block][position] is string stage)
            return stage + "." + parts[3];
        return key;
    }

    static FidInceptionV3 LoadInception(string path, SafetensorsHeader header)
    {
        var network = new FidInceptionV3();
        try
        {
            var expected = network.state_dict().ToDictionary(p => p.Key, p => p.Value.shape, StringComparer.Ordinal);
            var found = new Dictionary<string, SafetensorsEntry>(StringComparer.Ordinal);
            foreach (var entry in header.Entries) found[NormaliseInceptionKey(entry.Name)] = entry;

            static bool Optional(string key) => key.EndsWith(".num_batches_tracked", StringComparison.Ordinal);
            static bool Ignored(string key) => key is "fc.weight" or "fc.bias";
            var missing = expected.Keys.Where(k => !found.ContainsKey(k) && !Optional(k)).ToList();
            var unexpected = found.Keys.Where(k => !expected.ContainsKey(k) && !Ignored(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
            var mismatched = new List<string>();
            foreach (var (key, shape) in expected)
            {
                if (!found.TryGetValue(key, out var entry)) continue;
                if (!entry.Shape.SequenceEqual(shape))
                    mismatched.Add($"'{entry.Name}': file has [{string.Join(", ", entry.Shape)}], Inception-v3 has [{string.Join(", ", shape)}]");
                else if (!Optional(key) && entry.DType is not ("F32" or "F16" or "BF16" or "F64"))
                    mismatched.Add($"'{entry.Name}': file has dtype {entry.DType}, Inception-v3 weights are floating point");
            }
            if (missing.Count + unexpected.Count + mismatched.Count > 0)
            {
                var message = new StringBuilder($"'{path}' is not a complete set of pytorch-fid Inception-v3 weights:");
                StateDicts.List(message, "missing", missing.Select(k => $"'{k}'").ToList());
                StateDicts.List(message, "with another shape or dtype", mismatched);
                StateDicts.List(message, "unexpected", unexpected.Select(k => $"'{k}'").ToList());
                if (unexpected.Any(k => k.StartsWith("AuxLogits.", StringComparison.Ordinal)))
                    message.Append("\nAuxLogits.* keys mean torchvision's ImageNet Inception-v3, whose features differ from FID's; use pytorch-fid's weights.");
                message.Append('\n').Append(ConversionHint);
                throw new DiffuseException(message.ToString());
            }

            using var scope = NewDisposeScope();
            var loaded = Safetensors.Load(path);
            var state = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            foreach (var (key, tensor) in loaded) state[NormaliseInceptionKey(key)] = tensor;
            foreach (var (key, shape) in expected)
                if (!state.ContainsKey(key)) state[key] = zeros(shape, ScalarType.Int64);
            foreach (var key in state.Keys.Where(k => !expected.ContainsKey(k)).ToList()) state.Remove(key);
            StateDicts.LoadInto(network, state, path);
            network.eval();
            return network;
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }
}
